import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering

// `yard prices …`: the price book, listed by anyone, added to by the admin.

struct Prices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The price book: per model, effective-dated USD per million tokens (cache hit, cache miss, output), with optional peak hours.",
        subcommands: [List.self, SetRow.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every price row (USD per million tokens).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let env = ProcessInfo.processInfo.environment
            let key = client.apiKey ?? env["YARD_API_KEY"] ?? env["YARD_ADMIN_KEY"]
            let api = APIClient.make(url: client.url, key: key)
            let response = try await api.send(.GET, APIPath.v1("prices"))
            let prices = try response.decode(APIPriceList.self).prices
            if client.output == .json { return Print.json(response.body) }
            var table = Table(headers: ["ID", "MODEL", "FROM", "HIT", "MISS", "OUTPUT", "PEAK (UTC: HIT/MISS/OUTPUT)"])
            for row in prices {
                table.rows.append([
                    row.id ?? "", row.model, row.effectiveFrom, row.inputCacheHit, row.inputCacheMiss, row.output, Self.peak(row.peak),
                ])
            }
            print(table.render())
            print("\nprices in USD per million tokens")
        }

        /// `mon-fri 01-04, sat 06-10: 0.014/0.44/1.32`, or `-`.
        static func peak(_ peak: APIPrice.Peak?) -> String {
            guard let peak else { return "-" }
            let windows = peak.windows.map { window in
                let days = window.weekdays.compactMap(PeakWindows.weekday).sorted()
                return "\(PeakWindows.days(days)) \(PeakWindows.two(window.startHour))-\(PeakWindows.two(window.endHour))"
            }
            let rates = [peak.inputCacheHit, peak.inputCacheMiss, peak.output].joined(separator: "/")
            return "\(windows.joined(separator: ", ")): \(rates)"
        }
    }

    struct SetRow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Add a price row (admin key). Rows are never edited: a new row takes over from its --from instant.",
            discussion: """
                Prices are USD per million tokens, as decimal text. Example:
                  yard prices set --model deepseek-v4-flash --from 2026-08-16 --hit 0.007 --miss 0.22 --output 0.66 \\
                    --peak-hit 0.014 --peak-miss 0.44 --peak-output 1.32 --peak-windows "mon-fri 01-04,mon-fri 06-10"
                Peak windows are UTC: days (mon-fri, sat+sun, daily) and hours START-END (end exclusive, up to 24).
                """)
        @Option(help: "The model name; it prices every billed model it is a prefix of.") var model: String
        @Option(name: .customLong("from"), help: "Effective from this UTC date (2026-08-16) or instant.") var from: String
        @Option(help: "Input cache-hit price.") var hit: String
        @Option(help: "Input cache-miss price.") var miss: String
        @Option(help: "Output price (reasoning included).") var output: String
        @Option(help: "The row's id (default: MODEL@DATE).") var id: String?
        @Option(name: .customLong("peak-hit"), help: "Peak input cache-hit price.") var peakHit: String?
        @Option(name: .customLong("peak-miss"), help: "Peak input cache-miss price.") var peakMiss: String?
        @Option(name: .customLong("peak-output"), help: "Peak output price.") var peakOutput: String?
        @Option(name: .customLong("peak-windows"), help: "Peak hours, UTC: \"mon-fri 01-04,mon-fri 06-10\".") var peakWindows: String?
        @Flag(help: "Print the API's answer as JSON.") var json = false
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var admin: AdminOptions

        var peakValues: [String?] { [peakHit, peakMiss, peakOutput, peakWindows] }

        func validate() throws {
            let given = peakValues.filter { $0 != nil }.count
            if given != 0 && given != 4 {
                throw ValidationError("peak pricing needs all of --peak-hit, --peak-miss, --peak-output and --peak-windows")
            }
            if let peakWindows { _ = try PeakWindows.parse(peakWindows) }
            var prices: [(String, String)] = [("--hit", hit), ("--miss", miss), ("--output", output)]
            if let peakHit { prices.append(("--peak-hit", peakHit)) }
            if let peakMiss { prices.append(("--peak-miss", peakMiss)) }
            if let peakOutput { prices.append(("--peak-output", peakOutput)) }
            for (name, value) in prices {
                do throws(MeteringError) {
                    _ = try TokenPrice(parsing: value)
                } catch {
                    throw ValidationError("\(name): \(error.message)")
                }
            }
            if UTCTime.parse(from) == nil { throw ValidationError("--from must be a UTC date (2026-08-16) or instant (2026-08-16T00:00:00Z)") }
        }

        func run() async throws {
            var body = APIPrice(id: id, model: model, effectiveFrom: from, inputCacheHit: hit, inputCacheMiss: miss, output: output, peak: nil)
            if let peakHit, let peakMiss, let peakOutput, let peakWindows {
                body.peak = APIPrice.Peak(
                    windows: try PeakWindows.parse(peakWindows), inputCacheHit: peakHit, inputCacheMiss: peakMiss, output: peakOutput)
            }
            let key = admin.adminKey ?? ProcessInfo.processInfo.environment["YARD_ADMIN_KEY"]
            let response = try await APIClient.make(url: connection.url, key: key).send(.POST, APIPath.v1("admin", "prices"), body: body)
            let row = try response.decode(APIPriceEnvelope.self).price
            if json { return Print.json(response.body) }
            print("price \(row.id ?? "?") added: \(row.model) from \(row.effectiveFrom)")
            print("  hit \(row.inputCacheHit), miss \(row.inputCacheMiss), output \(row.output) USD per million tokens")
            if let peak = row.peak { print("  peak \(List.peak(peak))") }
        }
    }
}

/// `mon-fri 01-04,sat+sun 06-10` ↔ the price book's `{weekdays, start_hour, end_hour}` windows.
enum PeakWindows {
    static let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    /// An ISO weekday (1 = Monday) from its name in the API (`mon`).
    static func weekday(_ name: String) -> Int? {
        names.firstIndex(of: name.lowercased()).map { $0 + 1 }
    }

    static func parse(_ text: String) throws -> [APIPrice.Peak.Window] {
        var windows: [APIPrice.Peak.Window] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else { throw ValidationError("peak window '\(item)' must be DAYS HOURS, like 'mon-fri 01-04'") }
            var days: [Int] = []
            for piece in parts[0].lowercased().split(separator: "+") {
                if piece == "daily" {
                    days += Array(1...7)
                    continue
                }
                let ends = piece.split(separator: "-").map(String.init)
                guard (1...2).contains(ends.count), let first = names.firstIndex(of: ends[0]), let last = names.firstIndex(of: ends[ends.count - 1]),
                    first <= last
                else {
                    throw ValidationError("peak window days '\(parts[0])' must be days mon…sun, ranges like mon-fri, joined by + (sat+sun), or daily")
                }
                days += Array((first + 1)...(last + 1))
            }
            let hours = parts[1].split(separator: "-").map { Int($0) }
            guard hours.count == 2, let start = hours[0], let end = hours[1], (0...23).contains(start), (1...24).contains(end), start < end else {
                throw ValidationError("peak window hours '\(parts[1])' must be START-END in UTC, 0 ≤ START < END ≤ 24, like 01-04")
            }
            windows.append(.init(weekdays: Set(days).sorted().map { names[$0 - 1] }, startHour: start, endHour: end))
        }
        guard !windows.isEmpty else { throw ValidationError("--peak-windows needs at least one window, like 'mon-fri 01-04'") }
        return windows
    }

    /// ISO weekdays as `mon-fri`, `sat+sun`, `daily`.
    static func days(_ days: [Int]) -> String {
        guard days != Array(1...7) else { return "daily" }
        var runs: [String] = []
        var index = 0
        while index < days.count {
            var end = index
            while end + 1 < days.count, days[end + 1] == days[end] + 1 { end += 1 }
            let name = { (day: Int) in (1...7).contains(day) ? names[day - 1] : "?" }
            runs.append(end > index ? "\(name(days[index]))-\(name(days[end]))" : name(days[index]))
            index = end + 1
        }
        return runs.joined(separator: "+")
    }

    static func two(_ hour: Int) -> String { hour < 10 ? "0\(hour)" : "\(hour)" }
}
