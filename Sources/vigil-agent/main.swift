// vigil-agent: the edge agent. Everything lives in the Agent library
// (AgentCommandLine); this only hands over the arguments.
import Agent
#if canImport(Glibc)
import Glibc
#endif

exit(AgentCommandLine.main(Array(CommandLine.arguments.dropFirst())))
