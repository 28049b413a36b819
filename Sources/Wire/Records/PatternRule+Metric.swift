// PatternRule+Metric: a filter rule for StatsD metrics travels as an
// ordinary PatternRule whose method is the marker `@statsd` (never an HTTP
// method: `@` is not a token character) and whose path glob is the
// metric-name glob. Old agents never match it (no IPA record has that
// method); the record's layout stays as it was (docs/PROTOCOL.md, Patterns).
//
// Thread: values; any.

extension PatternRule {
    /// The method that marks a StatsD metric rule.
    public static let metricMethod = "@statsd"

    /// A rule on StatsD metric names: `glob` over the whole name.
    public init(metricGlob glob: String, exclude: Bool = false) {
        self.init(method: PatternRule.metricMethod, hostGlob: "*", pathGlob: glob, exclude: exclude)
    }

    /// The metric-name glob of a StatsD metric rule; nil for a traffic rule.
    public var metricGlob: String? { method == PatternRule.metricMethod ? pathGlob : nil }
}
