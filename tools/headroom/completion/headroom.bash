# bash completion for headroom: commands, their options, GGUF files for MODEL arguments, and the
# models a running headroomd serves for load and unload (asked with `headroom ps --all --json`,
# quietly: nothing is completed when no server answers). Installed into
# share/bash-completion/completions/headroom.
_headroom() {
    local cur prev command
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "run check pressure cache ps load unload top version help" -- "$cur"))
        return
    fi
    command=${COMP_WORDS[1]}
    case $prev in
        --load-mode) COMPREPLY=($(compgen -W "auto mmap copy mlock" -- "$cur")); return ;;
        --keep-alive) COMPREPLY=($(compgen -W "5m 10m 30m 1h 0 -1" -- "$cur")); return ;;
        --cache-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        -n|--max-tokens|-c|--ctx|-t|--threads|-s|--seed|--temp|--top-k|--top-p|-i|--interval|--count|-b|--batch|-g|--gpu-layers|--type-k|--type-v|--min-total|--recommended-total|--min-free) return ;;
    esac
    if [[ $cur == -* ]]; then
        local options
        case $command in
            run) options="--max-tokens --ctx --threads --seed --temp --top-k --top-p --load-mode --stats-json --quiet --verbose --help" ;;
            check) options="--ctx --batch --gpu-layers --type-k --type-v --load-mode --min-total --recommended-total --min-free --json --verbose --help" ;;
            pressure) options="--json --watch --interval --count --help" ;;
            cache) options="--json --force --cache-dir --help" ;;
            ps) options="--all --json --help" ;;
            load) options="--keep-alive --json --help" ;;
            unload) options="--json --help" ;;
            top) options="--interval --count --json --help" ;;
        esac
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
        return
    fi
    case $command in
        run|check)
            [[ $COMP_CWORD -eq 2 ]] && COMPREPLY=($(compgen -f -X '!*.gguf' -- "$cur") $(compgen -d -- "$cur")) ;;
        cache)
            [[ $COMP_CWORD -eq 2 ]] && COMPREPLY=($(compgen -W "ls clear" -- "$cur")) ;;
        load|unload)
            if [[ $COMP_CWORD -eq 2 ]]; then
                local names
                names=$(headroom ps --all --json 2>/dev/null | grep -o '"name":"[^"]*"' | cut -d'"' -f4)
                COMPREPLY=($(compgen -W "$names" -- "$cur"))
            fi ;;
    esac
}
complete -o filenames -F _headroom headroom
