"""Runs INSIDE the emulated aarch64 Python (arm64-emu): only numpy and ai_edge_litert are importable there.

    python arm64_guest.py MODEL INPUTS.npy OUTPUTS.npy [--threads N] [--no-xnnpack] [--warmup W] [--runs R]

INPUTS.npy holds N exact input tensors (N, *input_shape). Each is invoked once and its
raw output saved to OUTPUTS.npy (N, *output_shape). With --runs, input 0 is also timed
(W untimed, R timed invokes). One JSON line on stdout: machine, load and invoke times (s).
"""

import argparse
import json
import platform
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-xnnpack", action="store_true")
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--runs", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if args.no_xnnpack else OpResolverType.AUTO
    interpreter = Interpreter(model_path=args.model, num_threads=args.threads,
                              experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    load_s = time.perf_counter() - start
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    inputs = np.load(args.inputs)
    outputs = []
    for tensor in inputs:
        interpreter.set_tensor(inp["index"], tensor)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).copy())
    np.save(args.outputs, np.stack(outputs))
    times = []
    for i in range(args.warmup + args.runs):
        interpreter.set_tensor(inp["index"], inputs[0])
        t0 = time.perf_counter()
        interpreter.invoke()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"machine": platform.machine(), "load_s": load_s, "invoke_s": times}))


if __name__ == "__main__":
    main()
