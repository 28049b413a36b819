// rss_probe.swift — does linking libcurl cost an idle process memory?
// Built twice by scripts/bench-monitors.sh as a static Swift binary
// (-static-stdlib): plain, and with -DPROBE_LINK_CURL -lcurl. Both run an
// empty libev loop for a second and print their resident set; the curl
// build only references libcurl (linked, mapped, never initialised), and
// prints the library version when given "--version".
import RSSProbe
#if canImport(Glibc)
import Glibc
#endif

func residentKiB() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY)
    var buf = [UInt8](repeating: 0, count: 128)
    let n = read(fd, &buf, buf.count)
    close(fd)
    let fields = String(decoding: buf[0..<max(n, 0)], as: UTF8.self).split(separator: " ")
    return (Int(fields.count > 1 ? fields[1] : "0") ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}

if CommandLine.arguments.contains("--version") {
    print(String(cString: probe_linked_library()))
}
probe_run_empty_loop(1.0)
print("rss_kib=\(residentKiB())")
