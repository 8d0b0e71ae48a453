#!/usr/bin/python3
"""PyTorch reference for bench/engine.bench.mjs: the same U-Net (Cicek et al. 2016, Fig. 2), the same loss
(weighted softmax CE, label 0 ignored, / #annotated) and the same optimizer, timed the same way.

usage: engine_torch.py CASE_JSON   (CASE_JSON: {"config": {...}, "mode": "train"|"predict", "inputShape": [N,C,D,H,W],
        "threads": T, "repeats": R, "warmup": W, "device": "cpu"|"cuda", "precision": "fp32"|"tf32"|"bf16",
        "channelsLast": bool})
prints one JSON line: {"seconds": [...], "outputVoxels": n, "torch": version, "loss": last loss}
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class UNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c["dims"]
        Conv = nn.Conv3d if d == 3 else nn.Conv2d
        BN = nn.BatchNorm3d if d == 3 else nn.BatchNorm2d
        Up = nn.ConvTranspose3d if d == 3 else nn.ConvTranspose2d
        self.Pool = F.max_pool3d if d == 3 else F.max_pool2d
        pad = 1 if c["padding"] == "same" else 0
        b, L = c["baseFilters"], c["levels"]

        def block(cin, mid, out):
            layers = [Conv(cin, mid, 3, padding=pad)]
            if c["batchNorm"]:
                layers.append(BN(mid))
            layers += [nn.ReLU(inplace=True), Conv(mid, out, 3, padding=pad)]
            if c["batchNorm"]:
                layers.append(BN(out))
            layers.append(nn.ReLU(inplace=True))
            return nn.Sequential(*layers)

        self.enc = nn.ModuleList()
        cin = c["inChannels"]
        for l in range(L):
            self.enc.append(block(cin, b << l, b << (l + 1)))
            cin = b << (l + 1)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for l in range(L - 2, -1, -1):
            up, skip = b << (l + 2), b << (l + 1)
            self.up.append(Up(up, up, 2, stride=2, bias=False))
            self.dec.append(block(up + skip, skip, skip))
        self.out = Conv(b << 1, c["numClasses"], 1)

    def forward(self, x):
        skips = []
        for l, e in enumerate(self.enc):
            x = e(x)
            if l < len(self.enc) - 1:
                skips.append(x)
                x = self.Pool(x, 2)
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            s = skips.pop()
            sl = [slice(None), slice(None)] + [slice((s.shape[i] - x.shape[i]) // 2, (s.shape[i] - x.shape[i]) // 2 + x.shape[i]) for i in range(2, x.dim())]
            x = dec(torch.cat([s[tuple(sl)], x], 1))
        return self.out(x)


def loss_fn(logits, labels, weights):
    logp = F.log_softmax(logits.float(), 1)
    target = (labels - 1).clamp_min(0).unsqueeze(1)
    nll = -logp.gather(1, target).squeeze(1)
    wt = torch.cat([torch.zeros(1, device=logits.device), weights])
    w = wt[labels]
    return (w * nll).sum() / (labels > 0).sum().clamp_min(1)


def main():
    case = json.loads(sys.argv[1])
    torch.set_num_threads(case.get("threads", torch.get_num_threads()))
    torch.manual_seed(0)
    dev = torch.device(case.get("device", "cpu"))
    prec = case.get("precision", "fp32")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = prec != "fp32"
        torch.backends.cudnn.allow_tf32 = prec != "fp32"
    cl = case.get("channelsLast", False)
    fmt = torch.channels_last_3d if case["config"]["dims"] == 3 else torch.channels_last
    model = UNet(case["config"]).to(dev)
    if cl:
        model = model.to(memory_format=fmt)
    shape = case["inputShape"]
    x = torch.rand(*shape, device=dev) * 2 - 1
    if cl:
        x = x.contiguous(memory_format=fmt)
    repeats, warmup = case.get("repeats", 3), case.get("warmup", 1)
    times = []
    loss_v = None
    import contextlib
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if dev.type == "cuda" and prec == "bf16"
                else contextlib.nullcontext())
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    if case["mode"] == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.99)
        from math import prod
        def osz(n):
            L, same = case["config"]["levels"], case["config"]["padding"] == "same"
            if same:
                return n
            for _ in range(L - 1):
                n = (n - 4) // 2
            n -= 4
            for _ in range(L - 1):
                n = n * 2 - 4
            return n
        osp = [osz(n) for n in shape[2:]]
        g = torch.Generator().manual_seed(1)
        labels = torch.randint(0, case["config"]["numClasses"] + 1, [shape[0]] + osp, generator=g).to(dev)
        weights = torch.ones(case["config"]["numClasses"], device=dev)
        for i in range(warmup + repeats):
            sync()
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast:
                logits = model(x)
            loss = loss_fn(logits, labels, weights)
            loss.backward()
            opt.step()
            loss_v = loss.item()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t)
        nvox = shape[0] * prod(osp)
    else:
        model.eval()
        with torch.inference_mode():
            for i in range(warmup + repeats):
                sync()
                t = time.perf_counter()
                with autocast:
                    p = torch.softmax(model(x).float(), 1).cpu()
                sync()
                if i >= warmup:
                    times.append(time.perf_counter() - t)
        nvox = p.shape[0] * p[0, 0].numel()
    print(json.dumps({"seconds": times, "outputVoxels": nvox, "torch": torch.__version__, "loss": loss_v,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
