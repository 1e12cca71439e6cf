// The command line: CLI11 definitions of every option, with the help text that documents
// them (bench/README.md says the same at more length).
#pragma once

#include <CLI/CLI.hpp>

#include "bench/options.hpp"

namespace iotsocket::bench {

void add_options(CLI::App& app, Options& options);

}  // namespace iotsocket::bench
