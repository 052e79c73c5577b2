#if canImport(Glibc)
@preconcurrency import Glibc
#else
@preconcurrency import Darwin
#endif

/// Terminal output details.
enum Console {
    /// Makes stdout line-buffered even when it is a pipe, so that live progress
    /// (`--watch`, `yard demo`) shows as it happens rather than at exit.
    static func useLineBuffering() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}
