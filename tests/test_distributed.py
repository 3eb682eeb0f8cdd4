"""Multi-process training (training/distributed.py) with 2 CPU processes over gloo.

Equivalence with one process needs networks without batch statistics: BatchNorm normalises
each process's half batch with its own mean/variance (SyncBatchNorm, the fix, has no CPU
kernel), and dropout masks come from per-process RNG. So the comparison uses the MLP GAN with
BatchNorm and dropout off; noise and data are sharded from the same global draw, so the only
difference left is the order of float sums in the gradient all-reduce.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gancv.config import make_config
from gancv.data import load_data
from gancv.errors import GancvError
from gancv.training import distributed
from gancv.training.checkpoint import checkpoint_dirs
from gancv.training.loop import Trainer
from gancv.training.stream import BatchStream

OVERRIDES = [
    "data=digits", "image_size=16", "channels=1", "batch_size=16", "steps=4", "seed=3",
    "generator.name=mlp", "generator.hidden=[32,64]", "generator.batchnorm=false",
    "discriminator.name=mlp", "discriminator.hidden=[64,32]", "discriminator.dropout=0.0",
    # fp32 throughout: bf16 products round differently at the per-process batch size, and this
    # test checks that N processes compute what one does, to float summation order
    "amp=off", "matmul_precision=highest", "log_every=2", "sample_every=1000", "checkpoint_every=2", "progress=false", "device=cpu",
]

WORKER = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from safetensors.torch import save_file
    from gancv.config import make_config
    from gancv.training import distributed
    from gancv.training.loop import Trainer

    out, overrides = Path(sys.argv[1]), json.loads(sys.argv[2])
    rank = int(os.environ["RANK"])

    def dump(trainer, name):
        tensors = {f"{n}.{k}": v.detach().contiguous() for n, net in trainer.networks.items()
                   for k, v in net.state_dict().items()}
        save_file(tensors, str(out / f"{name}_rank{rank}.safetensors"))

    ddp = Trainer(make_config(None, overrides), out / "ddp")
    ddp.run()
    dump(ddp, "ddp")
    messages = []
    resumed = Trainer(make_config(None, overrides), out / "half", resume=True, log=messages.append)
    resumed.run()
    dump(resumed, "resumed")
    if rank == 0:
        (out / "resume_log.txt").write_text("\\n".join(messages))
    distributed.teardown()
""")


def single_weights(trainer):
    return {f"{n}.{k}": v.detach() for n, net in trainer.networks.items() for k, v in net.state_dict().items()}


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    single = Trainer(make_config(None, OVERRIDES), tmp_path / "single")
    single.run()
    reference = single_weights(single)
    # A run checkpointed by one process at step 2, resumed below on two.
    Trainer(make_config(None, OVERRIDES + ["steps=2"]), tmp_path / "half").run()

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Its own session, so a timeout kills the workers too instead of leaving them waiting on a
    # rendezvous that will never complete.
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path), json.dumps(OVERRIDES)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]

    for name in ("ddp", "resumed"):
        r0 = load_file(str(tmp_path / f"{name}_rank0.safetensors"))
        r1 = load_file(str(tmp_path / f"{name}_rank1.safetensors"))
        for key in r0:  # gradients were averaged: both ranks took the very same steps
            assert torch.equal(r0[key], r1[key]), (name, key)
        for key, want in reference.items():
            # Same global batch, same noise, same data: equal up to float summation order.
            torch.testing.assert_close(r0[key], want, rtol=1e-4, atol=1e-5, msg=f"{name} {key}")
    assert "written by 1 process(es), resuming on 2" in (tmp_path / "resume_log.txt").read_text()
    # rank 0 alone logged and checkpointed: one metrics row per log step, the usual checkpoints
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert [c.name for c in checkpoint_dirs(tmp_path / "ddp")] == ["step-0000002", "step-0000004"]
    assert (tmp_path / "ddp" / "model" / "generator.safetensors").is_file()


@pytest.mark.parametrize("world,accum", [(1, 2), (2, 1), (2, 2), (4, 1)])
@pytest.mark.parametrize("resident", [True, False])
def test_shards_partition_the_global_batch(world, accum, resident):
    bundle = load_data("digits", image_size=8, channels=1, max_items=100)
    if not resident:  # the DataLoader path (folder-like data sets)
        from dataclasses import replace

        bundle = replace(bundle, x=None, y=None)
    single = BatchStream(bundle, 16, torch.device("cpu"), seed=1)
    shards = [BatchStream(bundle, 16, torch.device("cpu"), seed=1, rank=r, world=world, accum=accum)
              for r in range(world)]
    for step in range(9):  # crosses an epoch boundary (100 items, 6 batches per epoch)
        want = single.next()[0]
        parts = [[None] * world for _ in range(accum)]
        for r, stream in enumerate(shards):
            for k in range(accum):
                parts[k][r] = stream.next()[0]
        got = torch.cat([p for row in parts for p in row])
        assert torch.equal(got, want), step
        if not resident:
            loaders = {id(stream._loader) for stream in shards}
            if step == 0:
                first_loaders = loaders
            elif step < 5:  # one DataLoader per stream for the whole run (persistent workers survive epochs)
                assert loaders == first_loaders
        if step == 4:  # a checkpoint taken here resumes on any number of processes
            state = shards[0].state()
            assert state == single.state()
            shards = [BatchStream(bundle, 16, torch.device("cpu"), seed=1, rank=r, world=world, accum=accum)
                      for r in range(world)]
            for stream in shards:
                stream.load_state(state)


def test_world_size_must_divide_the_batch():
    with pytest.raises(GancvError, match=r"batch_size=10 does not split over 4 process\(es\) x grad_accum=1; use a "
                                         r"multiple of 4, e.g. batch_size=8 or 12"):
        distributed.micro_batch(10, 4, 1)
    assert distributed.micro_batch(16, 2, 2) == 4


def test_sync_bn_needs_cuda():
    with pytest.raises(GancvError, match="sync_bn=true needs CUDA"):
        distributed.convert_sync_bn(torch.nn.BatchNorm1d(3), torch.device("cpu"))


def test_env_dist_defaults(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    info = distributed.env_dist()
    assert (info.rank, info.world, info.main, info.enabled) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(GancvError, match="launch with torchrun"):
        distributed.env_dist()


def test_per_rank_randomness_differs_while_noise_stays_shared():
    from gancv.tasks.generation import GenerationTask

    cfg = make_config(None, OVERRIDES + ["augment=translation"])
    bundle = load_data("digits", image_size=16, channels=1, max_items=64)
    tasks = []
    for rank in range(2):
        task = GenerationTask(cfg, bundle, torch.device("cpu"), torch.Generator().manual_seed(7))
        task.shard = (rank, 2)
        tasks.append(task)
    a, b = (task.local_rng() for task in tasks)
    assert not torch.equal(torch.rand(8, generator=a), torch.rand(8, generator=b))  # shards augment differently
    single = torch.Generator().manual_seed(7)
    torch.randint(0, 2**62, (1,), generator=single)  # what seeding the per-rank generators drew
    want = torch.randn(8, cfg.z_dim, generator=single)
    assert torch.equal(torch.cat([tasks[0].noise(4), tasks[1].noise(4)]), want)  # one global noise draw, sliced
    solo = GenerationTask(cfg, bundle, torch.device("cpu"), torch.Generator().manual_seed(7))
    assert solo.local_rng() is solo.rng  # one process: unchanged
