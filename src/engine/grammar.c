/*
 * grammar.c: the built-in GBNF of any JSON object (llama.cpp's grammars/json.gbnf with an
 * object at its root and white space bounded, so a model cannot pad for ever), and the answer
 * where the schema converter (engine_llama_schema.cpp) is not built in.
 */
#include "engine/grammar.h"

#include "core/error.h"

const char hr_engine_json_object_grammar[] =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
    "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

#ifndef HEADROOM_HAVE_SCHEMA_GRAMMAR
bool hr_engine_have_schema_grammar(void)
{
    return false;
}

int hr_engine_schema_grammar(const char *schema_json, char **out)
{
    (void)schema_json;
    *out = NULL;
    return hr_fail(HR_ENOTSUP, "JSON schemas are not available: this libheadroom was built without "
                   "llama.cpp's source tree, whose converter turns a schema into a grammar (docs/building.md); "
                   "a plain JSON object (no schema) still works");
}
#endif
