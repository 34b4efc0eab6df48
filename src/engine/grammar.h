/*
 * grammar.h: grammars that constrain generation (GBNF, llama.cpp's format): a JSON schema
 * converted by llama.cpp's converter (engine_llama_schema.cpp, where the build has the engine's
 * source tree) and the built-in grammar of any JSON object (grammar.c, always there).
 */
#ifndef HR_ENGINE_GRAMMAR_H
#define HR_ENGINE_GRAMMAR_H

#include <stdbool.h>

/* GBNF for any JSON object (OpenAI's json_object, Ollama's format "json"). */
extern const char hr_engine_json_object_grammar[];

/* Whether the schema converter was built in. */
bool hr_engine_have_schema_grammar(void);

/* The GBNF that `schema_json` (a JSON schema, as text) allows, malloc'd into *out. HR_EINVAL
 * with the converter's reason for a schema it cannot read or convert; HR_ENOTSUP where the
 * converter is not built in. */
int hr_engine_schema_grammar(const char *schema_json, char **out);

#endif
