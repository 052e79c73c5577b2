#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether this CPU can run `LocalInferenceAVX512`, which is compiled for Ice Lake-class
/// CPUs: every AVX-512 extension that target enables must be present, not only the ones its
/// kernels name, because the compiler may use any of them.
///
/// Read once from the `flags` line of /proc/cpuinfo (Linux). Elsewhere, or when the file
/// cannot be read, the answer is no and the AVX2 kernels run.
enum AVX512Support {
    static let available: Bool = {
        #if arch(x86_64) && os(Linux)
        guard let flags = cpuFlags() else { return false }
        let required = [
            "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512vbmi",
            "avx512_vbmi2", "avx512_bitalg", "avx512_vpopcntdq", "avx512ifma", "gfni", "vaes",
            "vpclmulqdq", "avx2", "fma", "f16c", "bmi2",
        ]
        return required.allSatisfy { flags.contains(Substring($0)) }
        #else
        return false
        #endif
    }()

    /// The words of the first `flags` line of /proc/cpuinfo.
    private static func cpuFlags() -> Set<Substring>? {
        guard let file = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { break }
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            guard let colon = text.firstIndex(of: ":") else { return nil }
            return Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }))
        }
        return nil
    }
}
