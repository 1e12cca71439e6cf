// Every way IOT/1.1 input can be refused, as enums with stable names. Logs, metrics and
// tests use the names, so a name never changes meaning; new errors are added at the end.
#pragma once

#include <string_view>

namespace iotsocket::protocol {

// X-macro: one list gives the enum and its names, so they cannot drift apart.
#define IOTSOCKET_FRAME_ERRORS(X)                                                     \
  X(frame_too_large)  /* more than 65535 bytes without a delimiter (rule 10) */       \
  X(no_blank_line)    /* no \r\n\r\n between header block and body (rule 2) */        \
  X(header_too_large) /* header block of 1024 bytes or more (rule 10) */              \
  X(bad_header_count) /* not exactly five header lines (rule 5) */                    \
  X(bad_header_line)  /* a header line without exactly one ':' (rule 4) */            \
  X(unknown_header)   /* a name other than IOT, DATE, TIME, DEVICE, KEY (rule 5) */   \
  X(duplicate_header) /* a name given twice (rule 5) */                               \
  X(bad_version)      /* IOT is not exactly "1.1" (rule 6) */                         \
  X(bad_time)         /* TIME is not digits '.' digits (rule 7) */                    \
  X(bad_device)       /* DEVICE is not 10 digits (rule 8) */                          \
  X(bad_key)          /* KEY is empty, or unsendable (rule 9) */                      \
  X(body_too_short)   /* body under 5 bytes after stripping (rule 10) */              \
  X(body_too_large)   /* body of 62535 bytes or more after stripping (rule 10) */     \
  X(time_skew)        /* |TIME - clock| is the tolerance or more */                   \
  X(replayed_time)    /* TIME already accepted for this device */                     \
  X(flood)            /* more frames in the flood window than allowed */              \
  X(device_mismatch)  /* a later frame names another DEVICE ("ID cloning") */         \
  X(key_mismatch)     /* a later frame carries another KEY */

enum class FrameError {
#define IOTSOCKET_ENUM_ITEM(name) name,
  IOTSOCKET_FRAME_ERRORS(IOTSOCKET_ENUM_ITEM)
#undef IOTSOCKET_ENUM_ITEM
};

// Why a FIFO line (docs/PROTOCOL.md "The backend side") is not a record.
#define IOTSOCKET_RECORD_ERRORS(X)                                                    \
  X(empty_line)        /* nothing between two newlines */                             \
  X(no_space)          /* no space separating ID and payload */                       \
  X(bad_device_id)     /* ID empty, not decimal digits, or above 9999999999 */        \
  X(bad_escape)        /* a backslash not followed by n, r or backslash */            \
  X(payload_too_short) /* under 5 bytes as the device would receive it */             \
  X(payload_too_large) /* 62535 bytes or more as the device would receive it */       \
  X(line_too_long)     /* longer than any valid record can be */

enum class RecordError {
#define IOTSOCKET_ENUM_ITEM(name) name,
  IOTSOCKET_RECORD_ERRORS(IOTSOCKET_ENUM_ITEM)
#undef IOTSOCKET_ENUM_ITEM
};

// How many there are (the enums count from 0), for the code that walks every one.
#define IOTSOCKET_COUNT_ITEM(name) +1
inline constexpr int kFrameErrorCount = 0 IOTSOCKET_FRAME_ERRORS(IOTSOCKET_COUNT_ITEM);
inline constexpr int kRecordErrorCount = 0 IOTSOCKET_RECORD_ERRORS(IOTSOCKET_COUNT_ITEM);
#undef IOTSOCKET_COUNT_ITEM

std::string_view name(FrameError error) noexcept;
std::string_view name(RecordError error) noexcept;

}  // namespace iotsocket::protocol
