"""The throughput benchmark times real training steps of both loops (speed itself is the benchmark's job)."""

import torch

from lfm_helpers.pretrain import make_optimizer
from lfm_helpers.throughput import ThroughputResult, format_benchmark, loop_throughput, trainer_throughput

from test_pretrain import CFG, _data, _model


def _weights(model):
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def test_both_loops_train_the_model_and_report_tokens_per_second():
    windows, _ = _data()
    threads = torch.get_num_threads()
    for measure in (lambda m: loop_throughput(m, windows, CFG, steps=3, warmup=1, threads=1),
                    lambda m: trainer_throughput(m, windows, CFG, steps=3, warmup=1)):
        model = _model()
        before = _weights(model)
        r = measure(model)
        assert r.measured_steps == 3 and r.tokens_per_second > 0 and r.warmup_seconds > 0
        assert not torch.equal(before, _weights(model))  # steps really ran
    assert torch.get_num_threads() == threads  # the loop's thread setting is undone
    assert r.name.startswith("transformers.Trainer (adamw")


def test_loop_can_compile_the_forward():
    windows, _ = _data()
    r = loop_throughput(_model(), windows, CFG, steps=2, warmup=1, threads=1, compile=True)
    assert r.name == "course loop (1 thread, torch.compile)" and r.tokens_per_second > 0


def test_optimizer_is_fused_only_on_a_gpu():
    opt = make_optimizer(_model(), CFG)
    assert not opt.defaults.get("fused")
    assert [g["weight_decay"] for g in opt.param_groups] == [CFG.weight_decay, 0.0]


def test_benchmark_table_gives_speedups_over_the_first_row():
    rows = [ThroughputResult("base", 100.0, 5, 1.0, 2), ThroughputResult("fast", 250.0, 5, 2.0, 1)]
    table = format_benchmark(rows).splitlines()
    assert "1.00x" in table[1] and "2.50x" in table[2]
