# Read by ctest (cmake/run_alone.cmake says why): tests that run alone, never beside
# others. A name that a directory does not have is ignored there.
set_tests_properties(
  # hundreds of TLS connections at once
  InboundTest.ThousandDevicesOnTwoWorkersTenFramesEachNothingLostOrInterleaved
  PushTest.ThousandDevicesTenThousandPushesEachExactlyOnceInOrder
  Shutdown.FiveHundredSendingDevicesAreClosedOverTheDrainPeriodAndNoAcceptedFrameIsLost
  BenchEndToEnd.ManyTlsDevicesSendTheirFramesAndEveryRecordIsCounted
  # megabytes of records through pipes
  InboundTest.SixtyKilobyteRecordsFromManyDevicesNeverInterleave
  InboundProcessesTest.FourWritersOfLargeRecordsNeverInterleave
  # rates and spreads in time
  BackPressureFault.SpoolAtItsBoundAndNoBackendFor30sLosesNothingAndSaysSo
  FloodFault.ALoggedInDeviceLosesNothingAndALegitimateLoginSucceedsDuringAFlood
  MemoryFault.AfterFourFloodWavesTheServerIsWithinTwiceItsStartingMemory
  ClientTest.ABacklogAfterARestartStaysUnderTheServersFloodLimit
  PROPERTIES RUN_SERIAL TRUE)
