"""Check memory pressure, load a model with keep-alive, stream an answer.
usage: python3 stream.py MODEL.gguf [PROMPT]"""
import sys

import headroom

print(headroom.check_memory_pressure())
with headroom.Context() as hr:
    hr.models.add("model", sys.argv[1], keep_alive="5m")   # unloaded after 5 idle minutes
    prompt = sys.argv[2] if len(sys.argv) > 2 else "Once upon a time"
    for piece in hr.models.generate("model", prompt, max_tokens=48):
        print(piece, end="", flush=True)
    print()
    print(hr.models.get("model").state, hr.metrics()[-1].tokens_per_second, "tokens/s")
