/* headroom-mkmodel: writes a llama-architecture GGUF with random weights and a real tokenizer, so
 * tests and demos get a model llama.cpp loads, of any size, without downloading one. The bytes must
 * depend only on the arguments; it must never hold a whole model in memory nor leave a partial file. */

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ggml.h>
#include <gguf.h>

#define PROGRAM      "headroom-mkmodel"
#define GENERATOR_ID "headroom-mkmodel 1"

enum { EXIT_IO = 1, EXIT_USAGE = 2 };

/* 4 MiB of f32 per chunk: large enough to amortise each write, small enough that even the 1b
 * preset runs in a few tens of MB. */
#define CHUNK_FLOATS ((size_t)1 << 20)

/* Caps keep every size well inside int64 and the u32 GGUF keys; they are far above any useful test model. */
#define MAX_DIM    ((int64_t)1 << 20)
#define MAX_LAYERS ((int64_t)1024)

#if defined(__GNUC__)
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PRINTF_LIKE(fmt, args)
#endif

/* Meta's Llama-2-chat template (tokenizer_config.json). llama.cpp's llama_chat_apply_template detects
 * it by its "[INST]", "<<SYS>>" and "content.strip()" markers as LLM_CHAT_TEMPLATE_LLAMA_2_SYS_STRIP,
 * and being real Jinja it also works with a full template engine. */
static const char llama2_chat_template[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}";

/* ChatML as Qwen2 writes it: real control tokens around each turn, which llama.cpp recognises by
 * "<|im_start|>" (and a Jinja engine renders the same text). */
static const char chatml_chat_template[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* A tool-calling template in the Hermes style that Qwen2.5 writes (ChatML turns; the tools as JSON
 * in the system turn; each call a JSON object inside <tool_call> tags; results inside
 * <tool_response> in a user turn). Only a Jinja engine renders it (llama.cpp's common chat
 * library), which also learns the call syntax from it to build a grammar and a parser. */
static const char hermes_chat_template[] =
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}"
    "{{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}"
    "{%- for tool in tools %}{{- \"\\n\" }}{{- tool | tojson }}{%- endfor %}"
    "{{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}"
    "{%- else %}{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- endif %}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}"
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

struct shape {
    int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_ctx;
};

struct preset {
    const char *name;
    struct shape shape;
};

static const struct preset presets[] = {
    { "tiny", {   64,  2,  128,  4, 2,  512 } },
    { "demo", {  256,  4,  768,  8, 4, 2048 } },
    { "small", { 512,  8, 1536,  8, 4, 4096 } },
    { "1b",   { 2048, 16, 5632, 32, 4, 4096 } },
};

struct weight_type {
    const char *name;
    enum ggml_type type;
    uint32_t llama_ftype; /* llama.h's enum llama_ftype, copied so this tool needs only ggml; the test
                             checks the values against llama.h */
};

static const struct weight_type weight_types[] = {
    { "f32",  GGML_TYPE_F32,  0 },
    { "f16",  GGML_TYPE_F16,  1 },
    { "q8_0", GGML_TYPE_Q8_0, 7 },
    { "q4_0", GGML_TYPE_Q4_0, 2 },
};

struct options {
    const struct preset *preset;
    const struct weight_type *type;
    struct shape shape;
    bool shape_overridden;
    uint64_t seed;
    const char *vocab_path;
    const char *out_path;
    const char *template_name; /* llama2 (default), chatml or none */
    const char *bos_text;      /* --bos: the start token by its text, added to every prompt */
    bool quiet;
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    const char *flag;
    size_t offset;
    int64_t max;
} dimension_flags[] = {
    { "--n-embd",    offsetof(struct shape, n_embd),    MAX_DIM },
    { "--n-layer",   offsetof(struct shape, n_layer),   MAX_LAYERS },
    { "--n-ff",      offsetof(struct shape, n_ff),      MAX_DIM },
    { "--n-head",    offsetof(struct shape, n_head),    MAX_DIM },
    { "--n-head-kv", offsetof(struct shape, n_head_kv), MAX_DIM },
    { "--ctx",       offsetof(struct shape, n_ctx),     MAX_DIM },
};

static int64_t *shape_field(struct shape *s, size_t offset)
{
    return (int64_t *)((char *)s + offset);
}

static void PRINTF_LIKE(1, 2) fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROGRAM ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void print_usage(FILE *to)
{
    fputs("usage: " PROGRAM " [--preset tiny|demo|small|1b] [--type f32|f16|q8_0|q4_0] [--seed N]\n"
          "       [--vocab PATH] [--n-embd N] [--n-layer N] [--n-ff N] [--n-head N]\n"
          "       [--n-head-kv N] [--ctx N] [--template llama2|chatml|hermes|none] [--bos TEXT]\n"
          "       [--quiet] -o OUT.gguf\n"
          "\n"
          "Writes a llama-architecture GGUF with deterministic random weights and the tokenizer\n"
          "of a vocab GGUF. The same arguments always give a byte-identical file.\n"
          "\n"
          "  --preset NAME   tiny (64 wide, 2 layers), demo (256, 4), small (512, 8),\n"
          "                  1b (2048, 16); default tiny\n"
          "  --type T        weight type of 2-D tensors; default q8_0\n"
          "  --seed N        unsigned 64-bit seed; default 42\n"
          "  --vocab PATH    GGUF to take tokenizer.* from; default $HEADROOM_VOCAB, else the\n"
          "                  engine's ggml-vocab-llama-spm.gguf\n"
          "  --n-embd ... --ctx N   override one dimension of the preset\n"
          "  --template T    chat template: llama2 (the default, where the vocab has none), chatml\n"
          "                  (<|im_start|> turns; the vocab must have those tokens, <|im_end|>\n"
          "                  becomes the end token), hermes (ChatML with tools: <tool_call> blocks,\n"
          "                  as Qwen2.5 writes them; Jinja only) or none (no template)\n"
          "  --bos TEXT      the token with this text starts every prompt (add_bos_token)\n"
          "  --quiet         no summary line\n"
          "  -o, --output OUT.gguf  where to write (atomically, via OUT.gguf.tmp.<pid>)\n"
          "\n"
          "Exit status: 0 written, 1 I/O error, 2 usage error.\n",
          to);
}

/* Accepts both "--flag value" and "--flag=value"; *index advances past a separate value. */
static bool take_value(int argc, char **argv, int *index, const char *flag, const char **value)
{
    const char *arg = argv[*index];
    const size_t len = strlen(flag);
    if (strncmp(arg, flag, len) != 0)
        return false;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return true;
    }
    if (arg[len] != '\0')
        return false;
    if (*index + 1 >= argc) {
        *value = NULL;
        return true;
    }
    *index += 1;
    *value = argv[*index];
    return true;
}

static bool parse_count(const char *flag, const char *text, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    const long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 1 || v > max) {
        fail("%s: expected an integer from 1 to %" PRId64 ", got '%s'", flag, max, text);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool parse_seed(const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    /* strtoull would quietly negate "-1" into a huge seed */
    const unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || text[0] == '+') {
        fail("--seed: expected an unsigned 64-bit integer, got '%s'", text);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* Returns -1 to go on, otherwise the exit status. */
static int parse_args(int argc, char **argv, struct options *opt)
{
    struct shape override = { 0, 0, 0, 0, 0, 0 };
    const char *preset_name = "tiny";
    const char *type_name = "q8_0";

    memset(opt, 0, sizeof(*opt));
    opt->seed = 42;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        const char *flag = NULL;
        int64_t *dim = NULL;
        int64_t dim_max = MAX_DIM;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_usage(stdout);
            return 0;
        }
        if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
            opt->quiet = true;
            continue;
        }

        if (take_value(argc, argv, &i, "--preset", &value)) {
            flag = "--preset";
            if (value)
                preset_name = value;
        } else if (take_value(argc, argv, &i, "--type", &value)) {
            flag = "--type";
            if (value)
                type_name = value;
        } else if (take_value(argc, argv, &i, "--seed", &value)) {
            flag = "--seed";
            if (value && !parse_seed(value, &opt->seed))
                return EXIT_USAGE;
        } else if (take_value(argc, argv, &i, "--vocab", &value)) {
            flag = "--vocab";
            opt->vocab_path = value;
        } else if (take_value(argc, argv, &i, "--template", &value)) {
            flag = "--template";
            opt->template_name = value;
        } else if (take_value(argc, argv, &i, "--bos", &value)) {
            flag = "--bos";
            opt->bos_text = value;
        } else if (take_value(argc, argv, &i, "--output", &value) || take_value(argc, argv, &i, "-o", &value)) {
            flag = "-o";
            opt->out_path = value;
        } else {
            for (size_t d = 0; d < COUNT(dimension_flags) && !dim; d++) {
                if (take_value(argc, argv, &i, dimension_flags[d].flag, &value)) {
                    flag = dimension_flags[d].flag;
                    dim = shape_field(&override, dimension_flags[d].offset);
                    dim_max = dimension_flags[d].max;
                }
            }
        }
        if (!flag) {
            fail("unknown argument '%s' (see --help)", arg);
            return EXIT_USAGE;
        }

        if (value == NULL || value[0] == '\0') {
            fail("%s needs a value (see --help)", flag);
            return EXIT_USAGE;
        }
        if (dim && !parse_count(flag, value, dim_max, dim))
            return EXIT_USAGE;
    }

    for (size_t p = 0; p < COUNT(presets); p++)
        if (strcmp(presets[p].name, preset_name) == 0)
            opt->preset = &presets[p];
    if (!opt->preset) {
        fail("--preset: unknown preset '%s' (choose tiny, demo, small or 1b)", preset_name);
        return EXIT_USAGE;
    }
    for (size_t t = 0; t < COUNT(weight_types); t++)
        if (strcmp(weight_types[t].name, type_name) == 0)
            opt->type = &weight_types[t];
    if (!opt->type) {
        fail("--type: unknown type '%s' (choose f32, f16, q8_0 or q4_0)", type_name);
        return EXIT_USAGE;
    }
    if (!opt->template_name) opt->template_name = "llama2";
    if (strcmp(opt->template_name, "llama2") != 0 && strcmp(opt->template_name, "chatml") != 0 &&
        strcmp(opt->template_name, "hermes") != 0 && strcmp(opt->template_name, "none") != 0) {
        fail("--template: unknown template '%s' (choose llama2, chatml, hermes or none)", opt->template_name);
        return EXIT_USAGE;
    }
    if (!opt->out_path) {
        fail("no output path: pass -o OUT.gguf (see --help)");
        return EXIT_USAGE;
    }

    /* Flags override the preset wherever they appear on the command line. */
    opt->shape = opt->preset->shape;
    for (size_t d = 0; d < COUNT(dimension_flags); d++) {
        const int64_t wanted = *shape_field(&override, dimension_flags[d].offset);
        int64_t *field = shape_field(&opt->shape, dimension_flags[d].offset);
        if (wanted != 0) {
            opt->shape_overridden = opt->shape_overridden || *field != wanted;
            *field = wanted;
        }
    }

    const struct shape *s = &opt->shape;
    if (s->n_embd % s->n_head != 0) {
        fail("n_embd %" PRId64 " is not divisible by n_head %" PRId64, s->n_embd, s->n_head);
        return EXIT_USAGE;
    }
    if (s->n_head % s->n_head_kv != 0) {
        fail("n_head %" PRId64 " is not divisible by n_head_kv %" PRId64, s->n_head, s->n_head_kv);
        return EXIT_USAGE;
    }
    if ((s->n_embd / s->n_head) % 2 != 0) {
        fail("head size %" PRId64 " (n_embd / n_head) must be even: RoPE rotates pairs of dimensions",
             s->n_embd / s->n_head);
        return EXIT_USAGE;
    }
    const int64_t block = ggml_blck_size(opt->type->type);
    if (s->n_embd % block != 0 || s->n_ff % block != 0) {
        fail("%s rows must be a multiple of its block size %" PRId64 ": n_embd %" PRId64 ", n_ff %" PRId64,
             opt->type->name, block, s->n_embd, s->n_ff);
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- random numbers: splitmix64, one independent stream per tensor ------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Seeding from (seed, tensor index) rather than one running stream means a tensor's values do not
 * depend on the order or chunking in which tensors are written. */
static uint64_t stream_for_tensor(uint64_t seed, int64_t tensor_id)
{
    uint64_t mix = seed;
    uint64_t state = splitmix64(&mix) ^ ((uint64_t)tensor_id * 0xD1B54A32D192ED03ull);
    (void)splitmix64(&state);
    return state;
}

/* Uniform on [-1, 1) with 24 bits, computed exactly in float so every platform gets the same bits. */
static float uniform_pm1(uint64_t *state)
{
    const int32_t bits = (int32_t)(splitmix64(state) >> 40);
    return (float)(bits - (1 << 23)) * 0x1p-23f;
}

/* ---- metadata ------------------------------------------------------------------------------ */

static bool copy_array(struct gguf_context *dst, const struct gguf_context *src, int64_t id, const char *key)
{
    const enum gguf_type type = gguf_get_arr_type(src, id);
    const size_t n = gguf_get_arr_n(src, id);

    if (type == GGUF_TYPE_ARRAY)
        return false;
    if (type != GGUF_TYPE_STRING) {
        gguf_set_arr_data(dst, key, type, gguf_get_arr_data(src, id), n);
        return true;
    }
    const char **strings = malloc((n + 1) * sizeof(*strings));
    if (!strings) {
        fail("out of memory copying %s (%zu strings)", key, n);
        exit(EXIT_IO);
    }
    for (size_t i = 0; i < n; i++)
        strings[i] = gguf_get_arr_str(src, id, i);
    gguf_set_arr_str(dst, key, strings, n);
    free(strings);
    return true;
}

/* The tokenizer is copied key by key, not with gguf_set_kv, because a vocab file also carries its
 * own general.* and llama.* keys that must not overwrite the generated model's. */
static bool copy_tokenizer(struct gguf_context *dst, const struct gguf_context *vocab, const char *vocab_path)
{
    static const char prefix[] = "tokenizer.";
    const int64_t n_kv = gguf_get_n_kv(vocab);

    for (int64_t id = 0; id < n_kv; id++) {
        const char *key = gguf_get_key(vocab, id);
        if (strncmp(key, prefix, sizeof(prefix) - 1) != 0)
            continue;
        bool ok = true;
        switch (gguf_get_kv_type(vocab, id)) {
        case GGUF_TYPE_UINT8:   gguf_set_val_u8(dst, key, gguf_get_val_u8(vocab, id)); break;
        case GGUF_TYPE_INT8:    gguf_set_val_i8(dst, key, gguf_get_val_i8(vocab, id)); break;
        case GGUF_TYPE_UINT16:  gguf_set_val_u16(dst, key, gguf_get_val_u16(vocab, id)); break;
        case GGUF_TYPE_INT16:   gguf_set_val_i16(dst, key, gguf_get_val_i16(vocab, id)); break;
        case GGUF_TYPE_UINT32:  gguf_set_val_u32(dst, key, gguf_get_val_u32(vocab, id)); break;
        case GGUF_TYPE_INT32:   gguf_set_val_i32(dst, key, gguf_get_val_i32(vocab, id)); break;
        case GGUF_TYPE_UINT64:  gguf_set_val_u64(dst, key, gguf_get_val_u64(vocab, id)); break;
        case GGUF_TYPE_INT64:   gguf_set_val_i64(dst, key, gguf_get_val_i64(vocab, id)); break;
        case GGUF_TYPE_FLOAT32: gguf_set_val_f32(dst, key, gguf_get_val_f32(vocab, id)); break;
        case GGUF_TYPE_FLOAT64: gguf_set_val_f64(dst, key, gguf_get_val_f64(vocab, id)); break;
        case GGUF_TYPE_BOOL:    gguf_set_val_bool(dst, key, gguf_get_val_bool(vocab, id)); break;
        case GGUF_TYPE_STRING:  gguf_set_val_str(dst, key, gguf_get_val_str(vocab, id)); break;
        case GGUF_TYPE_ARRAY:   ok = copy_array(dst, vocab, id, key); break;
        default:                ok = false; break;
        }
        if (!ok) {
            fail("%s: key %s has a type this tool cannot copy", vocab_path, key);
            return false;
        }
    }
    return true;
}

/* The id of the vocabulary's token with exactly this text, or -1. */
static int64_t find_token(const struct gguf_context *vocab, const char *text)
{
    const int64_t id = gguf_find_key(vocab, "tokenizer.ggml.tokens");
    const size_t n = gguf_get_arr_n(vocab, id);
    for (size_t i = 0; i < n; i++)
        if (strcmp(gguf_get_arr_str(vocab, id, i), text) == 0)
            return (int64_t)i;
    return -1;
}

/* The chat template and start token the options ask for, over what the vocab brought. */
static bool set_template(struct gguf_context *dst, const struct gguf_context *vocab, const char *vocab_path,
                         const struct options *opt)
{
    if (strcmp(opt->template_name, "none") == 0) {
        gguf_remove_key(dst, "tokenizer.chat_template");
    } else if (strcmp(opt->template_name, "chatml") == 0 || strcmp(opt->template_name, "hermes") == 0) {
        const int64_t start = find_token(vocab, "<|im_start|>"), end = find_token(vocab, "<|im_end|>");
        if (start < 0 || end < 0) {
            fail("--template %s: vocab '%s' has no <|im_start|> and <|im_end|> tokens (use a vocab that "
                 "has them, such as ggml-vocab-qwen2.gguf)", opt->template_name, vocab_path);
            return false;
        }
        bool hermes = strcmp(opt->template_name, "hermes") == 0;
        gguf_set_val_str(dst, "tokenizer.chat_template", hermes ? hermes_chat_template : chatml_chat_template);
        gguf_set_val_u32(dst, "tokenizer.ggml.eos_token_id", (uint32_t)end);
    } else if (gguf_find_key(vocab, "tokenizer.chat_template") < 0) {
        gguf_set_val_str(dst, "tokenizer.chat_template", llama2_chat_template);
    }
    if (opt->bos_text) {
        const int64_t bos = find_token(vocab, opt->bos_text);
        if (bos < 0) {
            fail("--bos: vocab '%s' has no token '%s'", vocab_path, opt->bos_text);
            return false;
        }
        gguf_set_val_u32(dst, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
        gguf_set_val_bool(dst, "tokenizer.ggml.add_bos_token", true);
    }
    return true;
}

/* ggml reports why a GGUF is unreadable through its log; keeping its first error lets that reason
 * end up in our single error line instead of as extra lines on stderr. */
static char engine_error[256];

static void keep_engine_error(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    if (level != GGML_LOG_LEVEL_ERROR || engine_error[0] != '\0')
        return;
    const char *colon = strstr(text, ": ");
    if (colon && memchr(text, ' ', (size_t)(colon - text)) == NULL)
        text = colon + 2; /* drop the "function_name: " prefix */
    snprintf(engine_error, sizeof(engine_error), "%s", text);
    engine_error[strcspn(engine_error, "\n")] = '\0';
}

static struct gguf_context *load_vocab(const char *path, int64_t *n_tokens)
{
    /* Opened here first so a missing file reports errno rather than a generic GGUF error. */
    FILE *file = fopen(path, "rb");
    if (!file) {
        fail("cannot open vocab '%s': %s", path, strerror(errno));
        return NULL;
    }
    struct gguf_init_params params = { .no_alloc = true, .ctx = NULL };
    engine_error[0] = '\0';
    ggml_log_set(keep_engine_error, NULL);
    struct gguf_context *vocab = gguf_init_from_file_ptr(file, params);
    ggml_log_set(NULL, NULL);
    fclose(file);
    if (!vocab) {
        fail("cannot read vocab '%s': %s", path, engine_error[0] ? engine_error : "not a valid GGUF file");
        return NULL;
    }
    const int64_t id = gguf_find_key(vocab, "tokenizer.ggml.tokens");
    if (id < 0 || gguf_get_kv_type(vocab, id) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(vocab, id) != GGUF_TYPE_STRING || gguf_get_arr_n(vocab, id) == 0 ||
        gguf_get_arr_n(vocab, id) > (size_t)INT32_MAX) {
        fail("vocab '%s' has no usable tokenizer.ggml.tokens array", path);
        gguf_free(vocab);
        return NULL;
    }
    *n_tokens = (int64_t)gguf_get_arr_n(vocab, id);
    return vocab;
}

/* ne1 == 0 makes a 1-D tensor: in this architecture those are exactly the RMSNorm gains, kept F32
 * as llama.cpp's converters do. */
static void add_tensor(struct ggml_context *tensors, struct gguf_context *gguf, const char *name,
                       enum ggml_type type, int64_t ne0, int64_t ne1)
{
    struct ggml_tensor *t = ne1 ? ggml_new_tensor_2d(tensors, type, ne0, ne1)
                                : ggml_new_tensor_1d(tensors, GGML_TYPE_F32, ne0);
    ggml_set_name(t, name);
    gguf_add_tensor(gguf, t);
}

static struct gguf_context *build_metadata(const struct options *opt, const struct gguf_context *vocab,
                                           const char *vocab_path, int64_t n_vocab)
{
    const struct shape *s = &opt->shape;
    const int64_t head_dim = s->n_embd / s->n_head;
    const int64_t n_embd_kv = s->n_head_kv * head_dim;
    const enum ggml_type type = opt->type->type;
    char name[GGML_MAX_NAME];

    struct gguf_context *gguf = gguf_init_empty();
    gguf_set_val_str(gguf, "general.architecture", "llama");
    snprintf(name, sizeof(name), "headroom-random-%s-%s",
             opt->shape_overridden ? "custom" : opt->preset->name, opt->type->name);
    gguf_set_val_str(gguf, "general.name", name);
    gguf_set_val_u32(gguf, "general.file_type", opt->type->llama_ftype);
    gguf_set_val_u32(gguf, "general.quantization_version", GGML_QNT_VERSION);
    gguf_set_val_u32(gguf, "llama.vocab_size", (uint32_t)n_vocab);
    gguf_set_val_u32(gguf, "llama.context_length", (uint32_t)s->n_ctx);
    gguf_set_val_u32(gguf, "llama.embedding_length", (uint32_t)s->n_embd);
    gguf_set_val_u32(gguf, "llama.block_count", (uint32_t)s->n_layer);
    gguf_set_val_u32(gguf, "llama.feed_forward_length", (uint32_t)s->n_ff);
    gguf_set_val_u32(gguf, "llama.rope.dimension_count", (uint32_t)head_dim);
    gguf_set_val_u32(gguf, "llama.attention.head_count", (uint32_t)s->n_head);
    gguf_set_val_u32(gguf, "llama.attention.head_count_kv", (uint32_t)s->n_head_kv);
    gguf_set_val_f32(gguf, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_f32(gguf, "llama.rope.freq_base", 10000.0f);
    gguf_set_val_str(gguf, "headroom.generator", GENERATOR_ID);
    gguf_set_val_u64(gguf, "headroom.seed", opt->seed);
    if (!copy_tokenizer(gguf, vocab, vocab_path) || !set_template(gguf, vocab, vocab_path, opt)) {
        gguf_free(gguf);
        return NULL;
    }

    /* Tensor descriptions only: no_alloc leaves data NULL, and gguf_add_tensor copies what it needs,
     * so the whole ggml context is released before any weight exists. */
    const size_t n_tensors = 3 + 9 * (size_t)s->n_layer;
    struct ggml_init_params params = {
        .mem_size = n_tensors * ggml_tensor_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context *tensors = ggml_init(params);
    if (!tensors) {
        fail("out of memory describing %zu tensors", n_tensors);
        gguf_free(gguf);
        return NULL;
    }
    add_tensor(tensors, gguf, "token_embd.weight", type, s->n_embd, n_vocab);
    for (int64_t il = 0; il < s->n_layer; il++) {
        static const struct {
            const char *suffix;
            int which; /* 0: norm; 1: [n_embd, n_embd]; 2: [n_embd, n_embd_kv]; 3: [n_embd, n_ff]; 4: [n_ff, n_embd] */
        } layer[] = {
            { "attn_norm", 0 }, { "attn_q", 1 }, { "attn_k", 2 }, { "attn_v", 2 }, { "attn_output", 1 },
            { "ffn_norm", 0 },  { "ffn_gate", 3 }, { "ffn_down", 4 }, { "ffn_up", 3 },
        };
        for (size_t t = 0; t < COUNT(layer); t++) {
            const int64_t ne0[] = { s->n_embd, s->n_embd, s->n_embd, s->n_embd, s->n_ff };
            const int64_t ne1[] = { 0, s->n_embd, n_embd_kv, s->n_ff, s->n_embd };
            snprintf(name, sizeof(name), "blk.%" PRId64 ".%s.weight", il, layer[t].suffix);
            add_tensor(tensors, gguf, name, type, ne0[layer[t].which], ne1[layer[t].which]);
        }
    }
    add_tensor(tensors, gguf, "output_norm.weight", GGML_TYPE_F32, s->n_embd, 0);
    add_tensor(tensors, gguf, "output.weight", type, s->n_embd, n_vocab);
    ggml_free(tensors);
    return gguf;
}

/* ---- output ---------------------------------------------------------------------------------- */

struct output {
    FILE *file;
    const char *path;
    uint64_t written;
};

/* A signal during the write must not strand the temporary file beside the output. */
static const char *volatile live_temp_path;

static void remove_temp_and_die(int sig)
{
    const char *path = live_temp_path;
    if (path)
        unlink(path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static bool write_bytes(struct output *out, const void *data, size_t n)
{
    if (n && fwrite(data, 1, n, out->file) != n) {
        fail("cannot write '%s': %s", out->path, strerror(errno ? errno : EIO));
        return false;
    }
    out->written += n;
    return true;
}

static bool pad_to(struct output *out, uint64_t alignment)
{
    static const unsigned char zeros[64];
    while (out->written % alignment != 0) {
        const uint64_t missing = alignment - out->written % alignment;
        if (!write_bytes(out, zeros, missing < sizeof(zeros) ? (size_t)missing : sizeof(zeros)))
            return false;
    }
    return true;
}

/* Generates and encodes one tensor a chunk of rows at a time; the values depend only on the seed and
 * the tensor's index, and weights have standard deviation 1/sqrt(fan_in) so activations stay O(1). */
static bool write_tensor(struct output *out, const struct gguf_context *gguf, int64_t id, uint64_t seed,
                         float *values, void *encoded)
{
    const int64_t *ne = gguf_get_tensor_ne(gguf, id);
    const enum ggml_type type = gguf_get_tensor_type(gguf, id);
    const int64_t n_per_row = ne[0];
    const int64_t n_rows = ne[1] * ne[2] * ne[3];
    const char *name = gguf_get_tensor_name(gguf, id);
    const size_t name_len = strlen(name);
    static const char norm_suffix[] = "_norm.weight";
    /* RMSNorm gains start at exactly 1, as in a freshly initialised model. */
    const bool is_norm = name_len >= sizeof(norm_suffix) - 1 &&
                         strcmp(name + name_len - (sizeof(norm_suffix) - 1), norm_suffix) == 0;
    const int64_t rows_per_chunk = (int64_t)CHUNK_FLOATS > n_per_row ? (int64_t)CHUNK_FLOATS / n_per_row : 1;
    const float scale = sqrtf(3.0f / (float)n_per_row);
    uint64_t rng = stream_for_tensor(seed, id);

    for (int64_t row = 0; row < n_rows; row += rows_per_chunk) {
        const int64_t rows = n_rows - row < rows_per_chunk ? n_rows - row : rows_per_chunk;
        const size_t n = (size_t)(rows * n_per_row);
        for (size_t i = 0; i < n; i++)
            values[i] = is_norm ? 1.0f : scale * uniform_pm1(&rng);
        const size_t nbytes = ggml_quantize_chunk(type, values, encoded, 0, rows, n_per_row, NULL);
        if (!write_bytes(out, encoded, nbytes))
            return false;
    }
    return true;
}

static bool write_data(struct output *out, const struct gguf_context *gguf, uint64_t seed, size_t max_row)
{
    const size_t n_floats = max_row > CHUNK_FLOATS ? max_row : CHUNK_FLOATS;
    float *values = malloc(n_floats * sizeof(float));
    void *encoded = malloc(n_floats * sizeof(float)); /* no supported type is wider than f32 */
    bool ok = values && encoded;
    if (!ok)
        fail("out of memory for a %zu-byte chunk", n_floats * sizeof(float));

    /* A context built in memory reports a data offset of 0; the data section starts where the
     * metadata (already padded to the alignment by gguf) ends. */
    const uint64_t data_offset = out->written;
    const uint64_t alignment = gguf_get_alignment(gguf);
    for (int64_t id = 0; ok && id < gguf_get_n_tensors(gguf); id++) {
        const uint64_t expected = data_offset + gguf_get_tensor_offset(gguf, id);
        if (out->written != expected) {
            fail("internal error: %s would land at byte %" PRIu64 ", metadata says %" PRIu64,
                 gguf_get_tensor_name(gguf, id), out->written, expected);
            ok = false;
            break;
        }
        /* gguf's own writer pads after every tensor, the last included; matching it keeps the file
         * identical to what gguf_write_to_file would produce. */
        ok = write_tensor(out, gguf, id, seed, values, encoded) && pad_to(out, alignment);
    }
    free(values);
    free(encoded);
    return ok;
}

static int write_model(const struct options *opt, const struct gguf_context *gguf, uint64_t *bytes)
{
    const size_t temp_len = strlen(opt->out_path) + 32;
    char *temp_path = malloc(temp_len);
    if (!temp_path) {
        fail("out of memory");
        return EXIT_IO;
    }
    snprintf(temp_path, temp_len, "%s.tmp.%ld", opt->out_path, (long)getpid());

    const size_t meta_size = gguf_get_meta_size(gguf);
    void *meta = malloc(meta_size);
    if (!meta) {
        fail("out of memory for %zu bytes of metadata", meta_size);
        free(temp_path);
        return EXIT_IO;
    }
    gguf_get_meta_data(gguf, meta);

    struct output out = { .file = NULL, .path = temp_path, .written = 0 };
    bool ok = false;
    out.file = fopen(temp_path, "wb");
    if (!out.file) {
        fail("cannot create '%s': %s", temp_path, strerror(errno));
        free(meta);
        free(temp_path);
        return EXIT_IO;
    }
    live_temp_path = temp_path;

    const struct shape *s = &opt->shape;
    const size_t max_row = (size_t)(s->n_embd > s->n_ff ? s->n_embd : s->n_ff);
    errno = 0;
    ok = write_bytes(&out, meta, meta_size) && write_data(&out, gguf, opt->seed, max_row);
    free(meta);

    /* Space errors may only surface at flush, sync or close, so each is checked before the rename. */
    if (ok && fflush(out.file) != 0) {
        fail("cannot write '%s': %s", temp_path, strerror(errno));
        ok = false;
    }
    if (ok && fsync(fileno(out.file)) != 0) {
        fail("cannot sync '%s': %s", temp_path, strerror(errno));
        ok = false;
    }
    if (fclose(out.file) != 0 && ok) {
        fail("cannot close '%s': %s", temp_path, strerror(errno));
        ok = false;
    }
    if (ok && rename(temp_path, opt->out_path) != 0) {
        fail("cannot rename '%s' to '%s': %s", temp_path, opt->out_path, strerror(errno));
        ok = false;
    }
    if (!ok)
        unlink(temp_path);
    live_temp_path = NULL;
    free(temp_path);
    *bytes = out.written;
    return ok ? 0 : EXIT_IO;
}

static uint64_t count_params(const struct gguf_context *gguf)
{
    uint64_t params = 0;
    for (int64_t id = 0; id < gguf_get_n_tensors(gguf); id++) {
        const int64_t *ne = gguf_get_tensor_ne(gguf, id);
        params += (uint64_t)(ne[0] * ne[1] * ne[2] * ne[3]);
    }
    return params;
}

int main(int argc, char **argv)
{
    struct options opt;
    int status = parse_args(argc, argv, &opt);
    if (status >= 0)
        return status;

    const char *vocab_path = opt.vocab_path;
    if (!vocab_path) {
        const char *env = getenv("HEADROOM_VOCAB");
        vocab_path = env && env[0] ? env : NULL;
    }
#ifdef HEADROOM_DEFAULT_VOCAB
    if (!vocab_path)
        vocab_path = HEADROOM_DEFAULT_VOCAB;
#endif
    if (!vocab_path) {
        fail("no vocab: pass --vocab PATH or set HEADROOM_VOCAB to a ggml-vocab-*.gguf");
        return EXIT_USAGE;
    }

    /* Catch signals before any temporary file exists; with SIGXFSZ ignored, a file-size limit turns
     * into an EFBIG write error that is cleaned up like any other. */
    signal(SIGINT, remove_temp_and_die);
    signal(SIGTERM, remove_temp_and_die);
    signal(SIGHUP, remove_temp_and_die);
    signal(SIGXFSZ, SIG_IGN);

    int64_t n_vocab = 0;
    struct gguf_context *vocab = load_vocab(vocab_path, &n_vocab);
    if (!vocab)
        return EXIT_IO;
    struct gguf_context *gguf = build_metadata(&opt, vocab, vocab_path, n_vocab);
    gguf_free(vocab);
    if (!gguf)
        return EXIT_IO;

    uint64_t bytes = 0;
    status = write_model(&opt, gguf, &bytes);
    if (status == 0 && !opt.quiet) {
        fprintf(stderr, "%s: wrote %s: %s %s seed %" PRIu64 ", %.1fM params, %" PRIu64 " bytes\n", PROGRAM,
                opt.out_path, opt.shape_overridden ? "custom" : opt.preset->name, opt.type->name, opt.seed,
                (double)count_params(gguf) / 1e6, bytes);
    }
    gguf_free(gguf);
    ggml_quantize_free();
    return status;
}
