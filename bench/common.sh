# common.sh: what the bench/ scripts share, sourced after `cd` to the repository root:
# the engine's tools (built once by scripts/bootstrap --tools) and the cached generated model.

# engine_tool NAME: prints the path of llama.cpp's NAME (llama-bench, llama-server) or exits.
engine_tool() {
    local engine_dir
    engine_dir=$(dirname "$(scripts/bootstrap --tools)") || exit 1   # builds the tools once
    [[ -x $engine_dir/tools/$1 ]] || { echo "bench: $1 not found in $engine_dir/tools" >&2; exit 1; }
    echo "$engine_dir/tools/$1"
}

# cached_model MKMODEL PRESET TYPE: prints the path of the generated model, made once (seed 42)
# in ${XDG_CACHE_HOME:-~/.cache}/headroom/models.
cached_model() {
    local models=${XDG_CACHE_HOME:-$HOME/.cache}/headroom/models
    local model=$models/$2-$3-seed42.gguf
    mkdir -p "$models"
    if [[ ! -f $model ]]; then
        echo "bench: generating $model (once)" >&2
        "$1" --preset "$2" --type "$3" --seed 42 -o "$model" >&2 || exit 1
    fi
    echo "$model"
}
