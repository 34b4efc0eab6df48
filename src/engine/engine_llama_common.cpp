/*
 * engine_llama_common.cpp: the few functions llama.cpp's common library (compiled from the engine's
 * source tree by src/CMakeLists.txt: JSON schemas, Jinja, the chat templates and parsers) takes
 * from common.cpp and log.cpp, which are not compiled (they pull in the rest of the library and
 * print). The string helpers are common.cpp's; the log drops the library's lines below warnings
 * and hands the others to headroom's log, so nothing is printed behind the tools' backs.
 */
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"
#include "log.h"

extern "C" {
#include "core/log.h"
}

void string_replace_all(std::string &s, const std::string &search, const std::string &replace)
{
    if (search.empty()) return;
    std::string builder;
    builder.reserve(s.length());
    size_t pos = 0, last_pos = 0;
    while ((pos = s.find(search, last_pos)) != std::string::npos) {
        builder.append(s, last_pos, pos - last_pos);
        builder.append(replace);
        last_pos = pos + search.length();
    }
    builder.append(s, last_pos, std::string::npos);
    s = std::move(builder);
}

std::string string_join(const std::vector<std::string> &values, const std::string &separator)
{
    std::string result;
    for (size_t i = 0; i < values.size(); ++i) {
        if (i > 0) result += separator;
        result += values[i];
    }
    return result;
}

std::vector<std::string> string_split(const std::string &str, const std::string &delimiter)
{
    std::vector<std::string> parts;
    size_t start = 0, end = str.find(delimiter);
    while (end != std::string::npos) {
        parts.push_back(str.substr(start, end - start));
        start = end + delimiter.length();
        end = str.find(delimiter, start);
    }
    parts.push_back(str.substr(start));
    return parts;
}

std::string string_repeat(const std::string &str, size_t n)
{
    std::string result;
    result.reserve(str.length() * n);
    for (size_t i = 0; i < n; ++i) result += str;
    return result;
}

std::vector<llama_token> common_tokenize(const struct llama_vocab *vocab, const std::string &text,
                                         bool add_special, bool parse_special)
{
    int n_tokens = (int)text.length() + 2 * add_special;
    std::vector<llama_token> result((size_t)n_tokens);
    n_tokens = llama_tokenize(vocab, text.data(), (int32_t)text.length(), result.data(), (int32_t)result.size(),
                              add_special, parse_special);
    if (n_tokens == std::numeric_limits<int32_t>::min()) throw std::runtime_error("the text is too long to tokenize");
    if (n_tokens < 0) {
        result.resize((size_t)-n_tokens);
        llama_tokenize(vocab, text.data(), (int32_t)text.length(), result.data(), (int32_t)result.size(), add_special,
                       parse_special);
    } else {
        result.resize((size_t)n_tokens);
    }
    return result;
}

std::string common_token_to_piece(const struct llama_vocab *vocab, llama_token token, bool special)
{
    std::string piece(16, '\0');
    int n_chars = llama_token_to_piece(vocab, token, &piece[0], (int32_t)piece.size(), 0, special);
    if (n_chars < 0) {
        piece.resize((size_t)-n_chars);
        n_chars = llama_token_to_piece(vocab, token, &piece[0], (int32_t)piece.size(), 0, special);
    }
    piece.resize(n_chars > 0 ? (size_t)n_chars : 0);
    return piece;
}

/* The library's log: LOG_DBG and LOG_INF are below the threshold and never formatted; warnings
 * and errors go to headroom's log at debug level (they explain a template the parser could not
 * analyse, which the caller reports as a sentence of its own). */
int common_log_get_verbosity_thold(void)
{
    return LOG_LEVEL_WARN;
}

struct common_log *common_log_main()
{
    return nullptr;
}

void common_log_add(struct common_log *, enum ggml_log_level level, const char *fmt, ...)
{
    if (level != GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_ERROR) return;
    char line[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof line, fmt, args);
    va_end(args);
    hr_log(HR_LOG_DEBUG, "llama.cpp common: %s", line);
}
