// Golden-fixture helper for Scripts/llama-reference.sh, built against the llama.cpp that
// llama-cpp-python 0.3.36 vendors. llama.cpp's CLI tools print text, not token ids and
// logits, so this small program asks libllama directly.
//
//   golden MODEL N_PREDICT < prompt_bytes  -> one JSON object on stdout:
//   {"prompt_ids": [...], "continuation": [...], "pieces": ["..."],
//    "positions": [{"pos": p, "top": [[id, logit], ... 5]}]}
// Greedy (argmax) decoding one token at a time after the prompt is processed in one batch,
// with logits requested at every prompt position.
#include "llama.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

static std::string json_escape(const std::string &s) {
    std::string o;
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break;
            case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break;
            case '\r': o += "\\r"; break;
            case '\t': o += "\\t"; break;
            default:
                if (c < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", c); o += b; }
                else o += (char)c;
        }
    }
    return o;
}

static void top5(const float *logits, int n_vocab, int pos, std::string &out) {
    std::vector<int> idx(n_vocab);
    for (int i = 0; i < n_vocab; i++) idx[i] = i;
    std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int a, int b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    char buf[128];
    snprintf(buf, sizeof buf, "{\"pos\": %d, \"top\": [", pos);
    out += buf;
    for (int k = 0; k < 5; k++) {
        snprintf(buf, sizeof buf, "%s[%d, %.6f]", k ? ", " : "", idx[k], logits[idx[k]]);
        out += buf;
    }
    out += "]}";
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: golden MODEL N_PREDICT < prompt\n"); return 2; }
    std::string prompt((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    int n_predict = atoi(argv[2]);
    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) { fprintf(stderr, "cannot load model\n"); return 1; }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);

    std::vector<llama_token> ids(prompt.size() + 8);
    int n = llama_tokenize(vocab, prompt.data(), (int)prompt.size(), ids.data(), (int)ids.size(), true, false);
    if (n < 0) { fprintf(stderr, "tokenize failed\n"); return 1; }
    ids.resize(n);

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048; cp.n_batch = 2048; cp.n_ubatch = 512; cp.n_threads = 2; cp.n_threads_batch = 2;
    // GOLDEN_FLASH_ATTN=off|on overrides llama.cpp's default (auto: on for CPU).
    if (const char *fa = getenv("GOLDEN_FLASH_ATTN")) {
        cp.flash_attn_type = std::string(fa) == "off" ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }
    if (const char *kv = getenv("GOLDEN_KV_F32")) { if (std::string(kv) == "1") { cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32; } }
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }

    std::string positions;
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = ids[i]; batch.pos[i] = i; batch.n_seq_id[i] = 1; batch.seq_id[i][0] = 0; batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
    for (int i = 0; i < n; i++) {
        if (!positions.empty()) positions += ",\n  ";
        top5(llama_get_logits_ith(ctx, i), n_vocab, i, positions);
    }
    llama_batch_free(batch);

    std::vector<llama_token> cont;
    std::string pieces;
    const float *logits = llama_get_logits_ith(ctx, n - 1);
    for (int step = 0; step < n_predict; step++) {
        int best = (int)(std::max_element(logits, logits + n_vocab) - logits);
        cont.push_back(best);
        char buf[256];
        int len = llama_token_to_piece(vocab, best, buf, sizeof buf, 0, false);
        if (!pieces.empty()) pieces += ", ";
        pieces += "\"" + json_escape(std::string(buf, len > 0 ? len : 0)) + "\"";
        if (llama_vocab_is_eog(vocab, best)) break;
        llama_token t = best;
        if (llama_decode(ctx, llama_batch_get_one(&t, 1))) { fprintf(stderr, "decode failed\n"); return 1; }
        logits = llama_get_logits_ith(ctx, -1);
        positions += ",\n  ";
        top5(logits, n_vocab, n + step, positions);
    }

    printf("{\"prompt_ids\": [");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("],\n \"continuation\": [");
    for (size_t i = 0; i < cont.size(); i++) printf("%s%d", i ? ", " : "", cont[i]);
    printf("],\n \"pieces\": [%s],\n \"positions\": [%s]}\n", pieces.c_str(), positions.c_str());
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
