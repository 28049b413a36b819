// CollectorVersion: the version `vigil-collector --version` prints.
//
// Thread: any (a constant).

public enum CollectorVersion {
    public static let current = "0.1.0"
}
