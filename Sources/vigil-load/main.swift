// vigil-load: argv to LoadCommandLine, nothing else.
#if canImport(Glibc)
import Glibc
#endif
import LoadGen

exit(LoadCommandLine.main(CommandLine.arguments))
