// What `iotsocketd` checks on disk before it starts (and `--check-config` with it), so that
// a file the server cannot use is named with the config file's line and its key instead of
// failing later, far from the cause. Internal to config/; load_file(path,
// FileChecks::server) runs it.
#pragma once

#include "config/config.hpp"
#include "config/reader.hpp"

namespace iotsocket::config {

// With TLS on, tls.cert and tls.key are readable files (not directories); spool.dir is a
// directory the server can write in, or can be made as one.
void check_server_files(Reader& reader, const Config& config);

}  // namespace iotsocket::config
