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

    /// A summary from a histogram of values in `unit`s of a second (1e-6
    /// for microseconds): quantiles 0.5, 0.9, 0.99 and 1 (the maximum),
    /// `_sum` and `_count`.
    mutating func summary(_ name: String, _ help: String, _ h: LogHistogram, unit: Double) {
        family(name, "summary", help)
        for q in [0.5, 0.9, 0.99] {
            sample(name, ["quantile": PrometheusText.format(q)], h.count == 0 ? 0 : Double(h.quantile(q)) * unit)
        }
        sample(name, ["quantile": "1"], h.count == 0 ? 0 : Double(h.max) * unit)
        sample(name + "_sum", Double(h.sum) * unit)
        sample(name + "_count", h.count)
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

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v.rounded() == v && abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}
