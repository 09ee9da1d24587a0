"""``flightbase models list|show NAME`` and ``flightbase train MODEL --dataset D --gpus N [--param k=v ...]``.

Parameter values are typed from the model's manifest (GET /builtin-models/NAME);
the service checks them again and names any bad one (``params.<name>``).
"""

from __future__ import annotations

import json
import os


def add_parsers(subparsers) -> None:
    models = subparsers.add_parser("models", help="the built-in models (listed with no action) and their parameters")
    sub = models.add_subparsers(dest="action", required=True, parser_class=type(models))
    p = sub.add_parser("list", help="the catalogue")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("show", help="one model: dataset layout, parameters, GPU options")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    t = subparsers.add_parser("train", help="train a built-in model on a dataset of the workspace")
    t.add_argument("model")
    t.add_argument("-w", "--workspace", default=os.environ.get("FLIGHTBASE_WORKSPACE"),
                   help="workspace (default: $FLIGHTBASE_WORKSPACE)")
    t.add_argument("--dataset", help="NAME or NAME@VERSION (see `flightbase models show MODEL` for its layout)")
    t.add_argument("--gpus", type=int, help="GPUs in all (default: the model's)")
    t.add_argument("--name", help="training name (default: the model's)")
    t.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a model parameter; repeat")
    t.add_argument("--launcher", choices=("horovod", "torchrun"), default="horovod")
    t.add_argument("--mixed-precision", action="store_true", help="autocast (bf16 on CPU)")
    t.add_argument("--grad-accumulation", type=int, default=1, metavar="N")
    t.add_argument("--fp16-compression", action="store_true", help="allreduce gradients in fp16")
    t.add_argument("--p2p", action="store_true", help="GPUDirect peer-to-peer (NCCL_P2P_DISABLE=0)")
    t.add_argument("--rdma", action="store_true", help="GPUDirect RDMA over InfiniBand")
    t.add_argument("--max-runtime", type=float, help="seconds")
    t.add_argument("--priority", type=int, default=0)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)


def coerce(manifest: dict, assignments: list[str]) -> dict:
    """``["lr=0.1", "arch=resnet18"]`` -> typed values; ValueError naming the parameter."""
    params = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE")
        spec = manifest["parameters"].get(key)
        if spec is None:
            raise ValueError(f"params.{key}: {manifest['name']} has no such parameter; it has: {', '.join(manifest['parameters'])}")
        try:
            if spec["type"] == "integer":
                params[key] = int(text)
            elif spec["type"] == "number":
                params[key] = float(text)
            elif spec["type"] == "boolean":
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                params[key] = text.lower() in ("true", "1", "yes")
            else:
                params[key] = text
        except ValueError:
            raise ValueError(f"params.{key}: {text!r} is not a{'n' if spec['type'][0] in 'ai' else ''} {spec['type']}") from None
    return params


def render(m: dict) -> str:
    lines = [f"{m['name']}: {m['title']}", "", m["description"], ""]
    if m["dataset"]:
        lines += ["dataset: " + m["dataset"]["layout"], "  example:", *(f"    {e}" for e in m["dataset"]["example"]), ""]
    else:
        lines += ["dataset: none", ""]
    lines.append(f"gpus: default {m['gpus']['default']}, at most {m['gpus']['max']}; launchers: {', '.join(m['launchers'])}")
    lines.append(f"gpu options: {', '.join(m['gpu_options'])}")
    lines += ["", "parameters (--param KEY=VALUE):"]
    for name, p in m["parameters"].items():
        allowed = f" one of {'|'.join(map(str, p['enum']))}" if p.get("enum") else ""
        if p.get("minimum") is not None or p.get("maximum") is not None:
            low, high = p.get("minimum"), p.get("maximum")
            allowed += f" in [{'' if low is None else low}, {'' if high is None else high}]"
        lines.append(f"  {name:<22} {p['type']:<8} default {json.dumps(p['default'])}{allowed}")
        lines.append(f"  {'':<22} {p['help']}")
    return "\n".join(lines)


def cmd_models(args) -> int:
    from flightbase.client import Client

    with Client() as c:
        if args.action == "list":
            rows = c.request("jobqueue", "GET", "builtin-models")
            if args.json:
                print(json.dumps(rows, indent=1))
                return 0
            for m in rows:
                print(f"{m['name']:<22} {m['task']:<22} {m['title']}")
            return 0
        m = c.request("jobqueue", "GET", f"builtin-models/{args.name}")
        print(json.dumps(m, indent=1) if args.json else render(m))
    return 0


def cmd_train(args) -> int:
    from flightbase.client import Client

    if not args.workspace:
        raise ValueError("workspace: give -w/--workspace or set FLIGHTBASE_WORKSPACE")
    with Client() as c:
        manifest = c.request("jobqueue", "GET", f"builtin-models/{args.model}")
        body = {
            "workspace": args.workspace, "name": args.name or args.model.replace("_", "-"), "model": args.model,
            "dataset": args.dataset, "params": coerce(manifest, args.param), "launcher": args.launcher,
            "options": {"mixed_precision": args.mixed_precision, "grad_accumulation": args.grad_accumulation,
                        "fp16_compression": args.fp16_compression, "gpudirect_p2p": args.p2p,
                        "gpudirect_rdma": args.rdma},
            "priority": args.priority,
        }
        if args.gpus:
            body["gpus"] = args.gpus
        if args.max_runtime:
            body["max_runtime"] = args.max_runtime
        t = c.builtin_train(body.pop("workspace"), body.pop("model"), body.pop("name"), **body)
    if args.json:
        print(json.dumps(t, indent=1))
    else:
        print(f"training {t['id']} ({args.model}, {t['spec']['gpus']} GPU(s), {t['spec']['launcher']}): {t['state']}; "
              f"job {t['jobs'][0]['id']}")
    return 0
