// vigil-collector: the command line is in Collector (CollectorCommand), so
// tests and tools link the same code; this file only hands over argv.
import Collector
#if canImport(Glibc)
import Glibc
#endif

exit(CollectorCommand.main(Array(CommandLine.arguments.dropFirst())))
