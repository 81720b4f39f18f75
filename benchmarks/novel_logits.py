"""How pretraining on the base digits leaves the output units of the novel digits.

    python benchmarks/novel_logits.py [mnist5k|digits|mnist]

Pretrains the transfer protocol's network on digits 0-4 (PC and backprop, the settings of
`pcastro oneshot --protocol transfer`) and prints, for the output units of the base and of
the novel classes, the bias, the weight-row norm and the mean logit on novel test images.
Softmax cross-entropy pushes the logits of classes never shown down, so a one-shot learner
that only adds to a novel row (PC's local update `lr e h^T`) must first undo that push,
whereas weight imprinting replaces the row. The `pc_sgd_fresh` diagnostic
(`benchmarks/oneshot_diagnostics.py`) removes the deficit; on mnist5k and MNIST that
barely changes the PC learners (see the README).
"""

import argparse

import jax
import numpy as np

from pcastro.bench._config import TransferConfig, hidden_units, make_solver
from pcastro.bench._learners import BackpropRule, PCRule, make_model, pretrain
from pcastro.bench._readouts import hidden_features
from pcastro.data import load_dataset


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default="mnist5k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = TransferConfig(dataset=args.dataset, seed=args.seed)
    ds = load_dataset(cfg.dataset)
    features = ds.x_train.shape[1]
    base = ds.y_train < 5
    net0 = make_model(jax.random.key(cfg.seed), (features, hidden_units(cfg, features), 10))
    novel_x = ds.x_test[ds.y_test >= 5]
    rules = {"pc": PCRule(steps=cfg.inference_steps, solver=make_solver(cfg)), "bp": BackpropRule()}
    for name, rule in rules.items():
        net = pretrain(
            rule, net0, ds.x_train[base], ds.y_train[base], epochs=cfg.pretrain_epochs, seed=0
        )
        layer = net.nodes[-1].modules[0]
        w, b = np.asarray(layer.weight), np.asarray(layer.bias)
        logits = np.asarray(hidden_features(net, novel_x)) @ w.T + b
        norms = np.linalg.norm(w, axis=1)
        print(
            f"{name}-pretrained: mean logit on {len(novel_x)} novel test images: base units "
            f"{logits[:, :5].mean():+.2f}, novel units {logits[:, 5:].mean():+.2f}; row norm "
            f"base {norms[:5].mean():.2f}, novel {norms[5:].mean():.2f}; bias base "
            f"{b[:5].mean():+.3f}, novel {b[5:].mean():+.3f}"
        )


if __name__ == "__main__":
    main()
