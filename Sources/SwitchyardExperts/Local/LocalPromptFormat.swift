import Foundation

/// How a chat request becomes a prompt for a local **base** model.
///
/// Gemma 3 270M as installed is the pre-trained model, not the instruction-tuned one: it
/// has no chat template and simply continues text. A conversation is therefore written
/// as a plain transcript that the model completes:
///
/// ```text
/// <system messages, joined by a blank line>
/// Answer with a single JSON object and nothing else.      ← only when the step wants JSON
///                                                         ← blank line, when either is present
/// User: <text>
/// Assistant: <text>
/// Tool: <result text>                                     ← a tool message
/// User: <text>
/// Assistant:
/// ```
///
/// The prompt always ends with `Assistant:`; the answer is the continuation, with its
/// leading whitespace removed, up to the first line that starts another turn (the stop
/// strings `\nUser:`, `\nAssistant:`, `\nTool:`, `\nSystem:`), the end-of-sequence token,
/// or the token cap. An earlier assistant turn that made tool calls is written as
/// `Assistant: (called NAME with ARGUMENTS)`; reasoning is not replayed.
///
/// Tools: the local model cannot call tools. A request that offers tools is answered
/// with text only (no tool calls, `finish_reason` stop or length), so an agent step
/// ends after its first turn with the model's text answer.
///
/// Control-token spellings inside messages (`<start_of_turn>`, `<eos>`) stay plain text:
/// the prompt is tokenized without parsing special tokens, so a message cannot inject them.
public enum LocalPromptFormat {
    /// Where a continuation is cut: the model starting the next turn of the transcript.
    public static let stopStrings = ["\nUser:", "\nAssistant:", "\nTool:", "\nSystem:"]

    /// The line added for a request that wants a JSON answer.
    public static let jsonInstruction = "Answer with a single JSON object and nothing else."

    public static func render(_ request: ModelRequest) -> String {
        var header: [String] = []
        for message in request.messages where message.role == .system {
            let text = message.content.trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { header.append(text) }
        }
        if request.wantsJSON { header.append(jsonInstruction) }
        var out = header.isEmpty ? "" : header.joined(separator: "\n\n") + "\n\n"
        for message in request.messages {
            switch message.role {
            case .system:
                continue
            case .user:
                out += "User: " + message.content + "\n"
            case .assistant:
                var text = message.content
                if !message.toolCalls.isEmpty {
                    let calls = message.toolCalls.map { "(called \($0.name) with \($0.arguments))" }.joined(separator: " ")
                    text = text.isEmpty ? calls : text + " " + calls
                }
                out += "Assistant: " + text + "\n"
            case .tool:
                out += "Tool: " + message.content + "\n"
            }
        }
        return out + "Assistant:"
    }
}
