// PrometheusText: builds the Prometheus text exposition format (version
// 0.0.4) — `# HELP`, `# TYPE`, then samples with escaped label values.
// Summaries come from a LogHistogram (quantiles within its ~1 % error).
import Reactor

struct PrometheusText {
    private(set) var text = ""

    mutating func family(_ name: String, _ type: String, _ help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{"
            var first = true
            for (k, v) in labels {
                if !first { text += "," }
                first = false
                text += k + "=\"" + PrometheusText.escape(v) + "\""
            }
            text += "}"
        }
        text += " " + PrometheusText.format(value) + "\n"
    }

    mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: UInt64) {
        sample(name, labels, Double(value))
    }

    mutating func sample(_ name: String, _ labels: KeyValuePairs<String, String> = [:], _ value: Int) {
        sample(name, labels, Double(value))
    }

    mutating func sample(_ name: String, _ value: Double) { sample(name, [:], value) }
    mutating func sample(_ name: String, _ value: UInt64) { sample(name, [:], Double(value)) }

    /// One family with a single unlabelled sample.
    mutating func single(_ name: String, _ type: String, _ help: String, _ value: Double) {
        family(name, type, help)
        sample(name, value)
    }

    /// A summary from histograms of values with `perSecond` units to a
    /// second (1e6 for microseconds): quantiles 0.5, 0.9, 0.99 and 1 (the
    /// maximum) of `recent` (the window SummaryWindows keeps), `_sum` and
    /// `_count` of `total` (cumulative, as counters are). Dividing by the
    /// power of ten, rather than multiplying by its inverse, keeps 7471 µs
    /// as 0.007471 (not 0.007470999999999999).
    mutating func summary(_ name: String, _ help: String, total: LogHistogram, recent: LogHistogram, perSecond: Double) {
        family(name, "summary", help)
        for q in [0.5, 0.9, 0.99] {
            sample(name, ["quantile": PrometheusText.format(q)], recent.count == 0 ? 0 : Double(recent.quantile(q)) / perSecond)
        }
        sample(name, ["quantile": "1"], recent.count == 0 ? 0 : Double(recent.max) / perSecond)
        sample(name + "_sum", Double(total.sum) / perSecond)
        sample(name + "_count", total.count)
    }

    static func escape(_ v: String) -> String {
        var out = ""
        for c in v.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Integers without a fraction; other values rounded to at most 9
    /// decimal places (a nanosecond of a second) and printed in the
    /// shortest form that reads back as that value, so arithmetic noise
    /// such as 0.007470999999999999 prints as 0.007471.
    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v.rounded() == v && abs(v) < 1e15 { return String(Int64(v)) }
        if abs(v) < 1e6 {
            let r = (v * 1e9).rounded() / 1e9
            return r.rounded() == r ? String(Int64(r)) : "\(r)"
        }
        return "\(v)"
    }
}
