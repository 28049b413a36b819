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
#   -use-ld=lld           the toolchain's ld.lld links the agent (gold, the
#                         driver's default on Linux, links everything else):
#                         lld has DT_RELR, below.
#   -z pack-relative-relocs  DT_RELR: the ~19,000 relative relocations of the
#                         position-independent executable packed into a
#                         bitmap (3 KB instead of 460 KB of .rela.dyn). Needs
#                         glibc >= 2.36 at run time (Debian 12); the binary
#                         requires the GLIBC_ABI_DT_RELR version, so an older
#                         glibc refuses it at start; scripts/package.sh makes
#                         the package depend on libc6 (>= 2.36).
#   --no-export-dynamic   the driver exports every symbol of the program's own
#                         modules (-export-dynamic); nothing looks them up:
#                         400 KB of .dynsym, .dynstr and .gnu.hash less.
#                         (--gc-sections comes from SwiftPM's release link.)
#   --icf=safe            folds identical functions whose address is not
#                         taken; with lld only those it can prove so (Swift
#                         objects carry no address-significance table): 12 KB.
#   --symbol-ordering-file  the functions an idle agent runs, placed first
#                         and together (scripts/agent-text-order.sh writes it;
#                         --no-warn-symbol-ordering: a stale name matches
#                         nothing and costs nothing but footprint).
#   -z max-page-size=0x10000  segments aligned to 64 KiB, so the kernel loads
#                         the binary at a 64 KiB boundary and its 64 KiB
#                         fault-around blocks are the binary's own: the same
#                         code is resident in every run, not one block more or
#                         less with where ASLR put it.
VIGIL_AGENT_SCRATCH=.build-agent
VIGIL_AGENT_BUILD=(swift build -c release --static-swift-stdlib --product vigil-agent
    --scratch-path "$VIGIL_AGENT_SCRATCH"
    -Xswiftc -Xfrontend -Xswiftc -function-sections
    -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs
    -Xlinker --no-export-dynamic -Xlinker --icf=safe
    -Xlinker --symbol-ordering-file=scripts/agent-text.order -Xlinker --no-warn-symbol-ordering
    -Xlinker -z -Xlinker max-page-size=0x10000)

# vigil_build_agent [ARGS…]: the shipped agent, unstripped, into
# $VIGIL_AGENT_SCRATCH/release/vigil-agent. The ordering file is not an
# input SwiftPM tracks, so the binary is removed first: the link (a few
# seconds) always runs with the file as it is now.
vigil_build_agent() {
    rm -f "$VIGIL_AGENT_SCRATCH/release/vigil-agent"
    VIGIL_STATIC=1 "${VIGIL_AGENT_BUILD[@]}" "$@"
}
