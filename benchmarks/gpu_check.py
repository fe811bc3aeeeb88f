"""GPU checks, prepared for a machine with CUDA (under 5 minutes there; CI never runs this).

Checks the CUDA path of every part that has one and prints one table:
  1. fused LSTM (cuDNN) against torch.nn.LSTM with the same weights, ragged lengths, bidirectional;
  2. the peephole cell on the GPU against the same cell on the CPU (outputs and gradients);
  3. bf16 autocast: classifier forward/backward, loss against fp32;
  4. a few training steps of the classifier and the summarizer, examples/s;
  5. batched beam search (beam 4, copy + coverage) against one-at-a-time: identical outputs, summaries/s.

    bash benchmarks/gpu_check.sh            # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu   # a smoke run of the same code here
"""

from __future__ import annotations

import argparse
import time

import torch

from nlp_lstm.models.classifier import ClassifierConfig
from nlp_lstm.data.collate import collate_summarization
from nlp_lstm.decoding.beam_search import DecodeConfig, beam_search
from nlp_lstm.models.classifier import TextClassifier
from nlp_lstm.models.summarizer import Summarizer, SummarizerConfig
from nlp_lstm.nn.lstm import LSTM


# Sizes of the GPU run; `--device cpu` shrinks them so the smoke run takes seconds.
SIZE = {"vocab": 8000, "hidden": 192, "batch": 32}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn, repeats: int = 5) -> float:
    fn()  # warm-up (cuDNN plans, allocator)
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def check_fused(device) -> list[tuple]:
    torch.manual_seed(0)
    ours = LSTM(64, 128, num_layers=2, bidirectional=True).to(device).eval()
    reference = torch.nn.LSTM(64, 128, num_layers=2, bidirectional=True, batch_first=True).to(device).eval()
    reference.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith("peephole")})
    inputs = torch.randn(32, 100, 64, device=device)
    lengths = torch.randint(10, 101, (32,), device=device)
    lengths[0] = 100
    with torch.no_grad():
        out, (h, c) = ours(inputs, lengths)
        packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        ref_packed, (ref_h, ref_c) = reference(packed)
        ref_out, _ = torch.nn.utils.rnn.pad_packed_sequence(ref_packed, batch_first=True, total_length=100)
    diff = max((out - ref_out).abs().max().item(), (h - ref_h).abs().max().item(), (c - ref_c).abs().max().item())
    seconds = timed(device, lambda: ours(inputs, lengths))
    return [("fused LSTM vs torch.nn.LSTM (packed), max |diff|", f"{diff:.2e}", diff < 1e-4),
            ("fused BiLSTM 2x128, batch 32, T<=100: ms/forward", f"{seconds * 1e3:.2f}", True)]


def check_peephole(device) -> list[tuple]:
    torch.manual_seed(0)
    results = []
    for peephole in ("diagonal", "full"):
        cpu = LSTM(16, 32, bidirectional=True, peephole=peephole)
        for name, parameter in cpu.named_parameters():
            if name.startswith("peephole"):
                torch.nn.init.normal_(parameter, std=0.1)
        gpu = LSTM(16, 32, bidirectional=True, peephole=peephole).to(device)
        gpu.load_state_dict(cpu.state_dict())
        inputs = torch.randn(8, 20, 16)
        lengths = torch.tensor([20, 3, 17, 9, 20, 1, 12, 5])
        out_cpu, _ = cpu(inputs, lengths)
        out_cpu.sum().backward()
        out_gpu, _ = gpu(inputs.to(device), lengths.to(device))
        out_gpu.sum().backward()
        diff = (out_cpu - out_gpu.cpu()).abs().max().item()
        grad = max((a.grad - b.grad.cpu()).abs().max().item() for a, b in zip(cpu.parameters(), gpu.parameters()))
        results.append((f"peephole={peephole}: {device.type} vs cpu, max |diff| outputs / grads", f"{diff:.1e} / {grad:.1e}",
                        diff < 1e-4 and grad < 1e-3))
    return results


def check_bf16(device) -> list[tuple]:
    torch.manual_seed(0)
    model = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=1000, dropout=0.0)).to(device)
    ids = torch.randint(4, 1000, (32, 50), device=device)
    lengths = torch.full((32,), 50, device=device)
    mask = torch.zeros(32, 50, dtype=torch.bool, device=device)
    labels = torch.randint(0, 2, (32,), device=device)
    fp32 = model.loss(model(ids, lengths, mask), labels)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        bf16 = model.loss(model(ids, lengths, mask), labels)
    bf16.backward()
    finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    gap = abs(fp32.item() - bf16.item())
    return [("bf16 autocast classifier: |loss fp32 - bf16|, grads finite", f"{gap:.1e}, {finite}", finite and gap < 5e-2)]


def check_training(device) -> list[tuple]:
    torch.manual_seed(0)
    results = []
    classifier = TextClassifier(ClassifierConfig(num_labels=2, task="binary", vocab_size=SIZE["vocab"], embedding_dim=SIZE["hidden"],
                                                 hidden_size=SIZE["hidden"], pooling="mean")).to(device)
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=2e-3)
    ids = torch.randint(4, SIZE["vocab"], (64, 40), device=device)
    lengths = torch.randint(5, 41, (64,), device=device)
    mask = torch.arange(40, device=device) >= lengths.unsqueeze(1)
    labels = torch.randint(0, 2, (64,), device=device)

    def classifier_step():
        loss = classifier.loss(classifier(ids, lengths, mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    results.append(("classifier train step (batch 64, T<=40): examples/s", f"{64 / timed(device, classifier_step):,.0f}", True))
    summarizer = Summarizer(SummarizerConfig(vocab_size=SIZE["vocab"], hidden_size=SIZE["hidden"], copy=True, coverage=True)).to(device)
    summarizer.coverage_weight = 1.0
    optimizer = torch.optim.Adagrad(summarizer.parameters(), lr=0.15)
    batch = _summary_batch(64, device)

    def summarizer_step():
        loss = summarizer(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    results.append(("summarizer train step (batch 64, src 100, tgt 16): examples/s",
                    f"{64 / timed(device, summarizer_step):,.0f}", True))
    return results


def _summary_batch(size: int, device, *, targets: bool = True) -> dict:
    generator = torch.Generator().manual_seed(1)
    examples = []
    for _ in range(size):
        length = int(torch.randint(20, 101, (1,), generator=generator))
        src = torch.randint(4, SIZE["vocab"], (length,), generator=generator).tolist()
        example = {"src_ids": src, "src_ext_ids": src, "oovs": [], "length": length}
        if targets:
            tgt = src[:12]
            example.update(tgt_ids=tgt, tgt_ext_ids=tgt, tgt_length=len(tgt))
        examples.append(example)
    batch = collate_summarization(examples)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def check_decoding(device) -> list[tuple]:
    torch.manual_seed(0)
    model = Summarizer(SummarizerConfig(vocab_size=SIZE["vocab"], hidden_size=SIZE["hidden"], copy=True, coverage=True)).to(device).eval()
    config = DecodeConfig(beam_size=4, max_length=16)
    count = SIZE["batch"]
    batch = _summary_batch(count, device, targets=False)
    batched = beam_search(model, batch, config)
    singles = []
    for row in range(count):
        single = _summary_batch(count, device, targets=False)
        single = {k: (v[row : row + 1] if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in single.items()}
        single["oovs"] = [[]]
        singles.append(single)
    one_by_one = [beam_search(model, single, config)[0] for single in singles]
    batched_s = timed(device, lambda: beam_search(model, batch, config), repeats=3)
    single_s = timed(device, lambda: [beam_search(model, s, config) for s in singles], repeats=1)
    return [(f"beam 4 batch {count} == one at a time", str(batched == one_by_one), batched == one_by_one),
            ("beam 4, copy+coverage: summaries/s batched vs single",
             f"{count / batched_s:,.1f} vs {count / single_s:,.1f}", True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    device = torch.device(parser.parse_args().device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible; run with --device cpu for a smoke run")
        print(f"device: {torch.cuda.get_device_name(device)}  torch {torch.__version__}  CUDA {torch.version.cuda}  "
              f"cuDNN {torch.backends.cudnn.version()}")
    else:
        SIZE.update(vocab=500, hidden=32, batch=4)
        print(f"device: cpu (smoke run, small sizes)  torch {torch.__version__}  threads {torch.get_num_threads()}")
    rows = []
    for check in (check_fused, check_peephole, check_bf16, check_training, check_decoding):
        rows += check(device)
    width = max(len(r[0]) for r in rows)
    for name, value, ok in rows:
        print(f"{name:<{width}}  {value:>22}  {'ok' if ok else 'FAILED'}")
    if not all(ok for *_, ok in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
