# Sourced by the scripts that build vigil-agent as it ships (README, "Static
# build"): the one definition of its flags.
#
# VIGIL_STATIC=1 links libev.a and libsodium.a, --static-swift-stdlib the
# Swift runtime. Its own scratch path: the Swift frontend keeps an object
# file whose IR did not change even when a code-generation flag did, so the
# flags below must not share objects with a build made without them.
#   -function-sections    every Swift function in its own section, which the
#                         link can place, and --gc-sections drop, one by one
#                         (a frontend flag: SwiftPM rejects it as a driver flag
#                         in incremental builds).
#   --no-export-dynamic   the driver exports every symbol of the program's own
#                         modules (-export-dynamic); nothing looks them up:
#                         400 KB of .dynsym, .dynstr and .gnu.hash less.
#   --icf=safe            gold folds identical functions whose address is not
#                         taken (gold is the toolchain's linker on Linux).
#   --section-ordering-file  the functions an idle agent runs, placed first
#                         and together (scripts/agent-text-order.sh writes it).
#   -z max-page-size=0x10000  segments aligned to 64 KiB, so the kernel loads
#                         the binary at a 64 KiB boundary and its 64 KiB
#                         fault-around blocks are the binary's own: the same
#                         code is resident in every run, not one block more or
#                         less with where ASLR put it.
VIGIL_AGENT_SCRATCH=.build-agent
VIGIL_AGENT_BUILD=(swift build -c release --static-swift-stdlib --product vigil-agent
    --scratch-path "$VIGIL_AGENT_SCRATCH"
    -Xswiftc -Xfrontend -Xswiftc -function-sections
    -Xlinker --no-export-dynamic -Xlinker --icf=safe
    -Xlinker --section-ordering-file=scripts/agent-text.order
    -Xlinker -z -Xlinker max-page-size=0x10000)

# vigil_build_agent [ARGS…]: the shipped agent, unstripped, into
# $VIGIL_AGENT_SCRATCH/release/vigil-agent. The ordering file is not an
# input SwiftPM tracks, so the binary is removed first: the link (a few
# seconds) always runs with the file as it is now.
vigil_build_agent() {
    rm -f "$VIGIL_AGENT_SCRATCH/release/vigil-agent"
    VIGIL_STATIC=1 "${VIGIL_AGENT_BUILD[@]}" "$@"
}
