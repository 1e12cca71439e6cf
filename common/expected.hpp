// A value or a typed error: the subset of C++23 std::expected that this code base uses.
// GCC 12 (Debian 12) has no std::expected; when the toolchain has it, this header goes.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace iotsocket {

template <class E>
struct Unexpected {
  E error;
};
template <class E>
Unexpected(E) -> Unexpected<E>;

template <class T, class E>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit like std::expected
  Expected(Unexpected<E> unexpected) : state_(std::in_place_index<1>, std::move(unexpected.error)) {}  // NOLINT

  bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & noexcept { return *checked_value(); }
  const T& value() const& noexcept { return *checked_value(); }
  T&& value() && noexcept { return std::move(*checked_value()); }
  T& operator*() & noexcept { return value(); }
  const T& operator*() const& noexcept { return value(); }
  T* operator->() noexcept { return checked_value(); }
  const T* operator->() const noexcept { return checked_value(); }

  const E& error() const noexcept {
    const E* e = std::get_if<1>(&state_);
    assert(e != nullptr && "error() on an Expected that holds a value");
    return *e;
  }

 private:
  T* checked_value() noexcept {
    T* v = std::get_if<0>(&state_);
    assert(v != nullptr && "value() on an Expected that holds an error");
    return v;
  }
  const T* checked_value() const noexcept {
    const T* v = std::get_if<0>(&state_);
    assert(v != nullptr && "value() on an Expected that holds an error");
    return v;
  }

  std::variant<T, E> state_;
};

// A result with nothing in it but success or the error message.
using Status = Expected<std::monostate, std::string>;

}  // namespace iotsocket
