/*
 * engine_llama_schema.cpp: a JSON schema turned into a GBNF grammar by llama.cpp's own converter
 * (common/json-schema-to-grammar.cpp of the engine's source tree, with the few files it needs),
 * behind one extern "C" function. Built only where the source tree was found (src/CMakeLists.txt);
 * the converter's C++ exceptions end here, as a sentence.
 */
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

// The converter's files, compiled here as part of this one unit (warnings off for them only),
// unless the chat library is built (src/CMakeLists.txt), whose objects hold them already.
#ifndef HEADROOM_HAVE_CHAT_TEMPLATES
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wpointer-arith"
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wvla"
#include "json.cpp"
#include "json-schema.cpp"
#include "unicode.cpp"
#include "trie.cpp"
#include "json-schema-to-grammar.cpp"
#pragma GCC diagnostic pop
#else
#include "json-schema-to-grammar.h"
#endif

extern "C" {
#include "core/error.h"
#include "engine/grammar.h"
}

#ifndef HEADROOM_HAVE_CHAT_TEMPLATES   /* else engine_llama_common.cpp has them */
// What the converter takes from common.cpp, which is not compiled here (it would pull in the rest
// of llama.cpp's common library): the same three string helpers, as common.cpp defines them.
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

#endif

extern "C" bool hr_engine_have_schema_grammar(void)
{
    return true;
}

extern "C" int hr_engine_schema_grammar(const char *schema_json, char **out)
{
    *out = nullptr;
    std::string grammar;
    try {
        common_json schema = common_json::parse(std::string(schema_json));
        grammar = json_schema_to_grammar(schema);
    } catch (const std::exception &e) {
        return hr_fail(HR_EINVAL, "the JSON schema cannot be turned into a grammar: %s", e.what());
    } catch (...) {
        return hr_fail(HR_EINVAL, "the JSON schema cannot be turned into a grammar");
    }
    *out = strdup(grammar.c_str());
    if (!*out) return hr_fail(HR_ENOMEM, "out of memory for a grammar");
    return HR_OK;
}
