# `make test` runs ctest with several tests at once (most of them wait on timers and
# sockets). The tests named in tests/run_alone.cmake load the machine (hundreds of TLS
# connections, megabytes of records) or check how events spread in time; beside others on
# two cores they would measure the machine, not the server. ctest reads that file after
# each directory's discovered tests, and runs those alone (RUN_SERIAL).
#
# Call iotsocket_run_alone_after_discovery() after every gtest_discover_tests().
set(IOTSOCKET_RUN_ALONE_FILE ${PROJECT_SOURCE_DIR}/tests/run_alone.cmake)

function(iotsocket_run_alone_after_discovery)
  get_property(files DIRECTORY PROPERTY TEST_INCLUDE_FILES)
  list(REMOVE_ITEM files ${IOTSOCKET_RUN_ALONE_FILE})
  list(APPEND files ${IOTSOCKET_RUN_ALONE_FILE})  # last: after the tests it names
  set_property(DIRECTORY PROPERTY TEST_INCLUDE_FILES ${files})
endfunction()
