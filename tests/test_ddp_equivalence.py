"""DistributedDataParallel through ``fit`` equals single-process training on the same draws: two
gloo processes with batch 2 each end with the weights of one process with batch 4."""

import os
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from bidsxai.training import distributed
from bidsxai.training.dataset import VolumeDataset
from bidsxai.training.loop import TrainOptions, fit


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 2, 3, 3, 3)).astype(np.float32)
    return VolumeDataset(x, np.array([0, 1, 1] * 4), weights=np.linspace(0.5, 2, 12))


def _model():
    torch.manual_seed(7)  # no batch norm or dropout: the per-rank batches then add up exactly
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(54, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    )


def _train(context, batch_size):
    model = _model()
    options = TrainOptions(
        epochs=3,
        patience=5,
        batch_size=batch_size,
        optimiser="adam",
        learning_rate=0.05,
        weight_decay=0.0,
    )
    data = _data()
    fit(model, data, data, device=torch.device("cpu"), options=options, seed=3, ranks=context)
    return model


def _rank(rank, port, folder):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    context = distributed.start()
    try:
        model = _train(context, batch_size=2)
        torch.save(model.state_dict(), os.path.join(folder, f"rank{rank}.pt"))
    finally:
        distributed.stop(context)


def test_ddp_steps_equal_single_process_steps(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    single = _train(distributed.Ranks(), batch_size=4).state_dict()
    untrained = _model().state_dict()
    for rank in (0, 1):
        replica = torch.load(tmp_path / f"rank{rank}.pt")
        for name, tensor in single.items():
            torch.testing.assert_close(replica[name], tensor, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(single[k], untrained[k]) for k in single)  # it did train
