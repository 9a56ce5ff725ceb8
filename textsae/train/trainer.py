"""Train a sparse autoencoder on a feature matrix: Adam, warm-up/decay, checkpoints, resume.

The trainer is split into phases — :meth:`Trainer.setup`, :meth:`Trainer.train_step`,
:meth:`Trainer.evaluate`, :meth:`Trainer.save_checkpoint` — and :meth:`Trainer.train` strings them
together. Batch order and corruption noise are pure functions of ``(seed, step)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have (bit-identical on CPU).

**Several processes** (data parallelism, ``torchrun --nproc-per-node N``; :mod:`textsae.distributed`). Every rank
holds the whole SAE and the whole feature matrix (or a memory map of it) and computes the same global batch of
``train.batch_size`` rows; each takes its own contiguous part of it (:func:`~textsae.distributed.rank_slice`) and
weights its loss by its rows / the global rows, so that the gradients summed over the ranks (in
:class:`~textsae.train.step_in_backward.StepInBackward`'s hooks, before the decoder constraint and the Adam step) are
the one-process gradient of the global batch. The parameters then stay identical on every rank.

Exact under data parallelism (the one process's gradient up to float summation order): every term that is a mean
over rows of a per-row quantity, i.e. the reconstruction (``mse``, ``bce``), Multi-TopK's recon(4k), the Matryoshka
prefixes, the L1 and JumpReLU penalties, the label heads' cross-entropy; and the logged FVU (from the ranks' summed
error, squares and column sums). From each rank's own rows (per-rank batch statistics: close to, not equal to, one
process): BatchTopK's batch threshold (top B_r·k of the rank's B_r rows; the inference-threshold EMA is then averaged
over the ranks), SigmoidKL's ρ̂ (the rank's mean activation), AuxK's normalisation Σ_b ‖e_b − ē‖² (the rank's
residual mean) and the Gaussian corruption's RMS. Measured (`python tests/distributed/train_tiny.py OUT ARCH` against
`torchrun --nproc-per-node 2 tests/distributed/train_tiny.py OUT ARCH`) on 320 × 40 sparse rows, 48 latents, global batch 32, 24
steps, 2 ranks against 1 (max |Δ| / max |w|): TopK, ReLU-L1, JumpReLU ≤ 2e-5; TopK with AuxK active (8% dead)
1.8e-4; SigmoidKL 3e-2; BatchTopK 0.24. Corruption and label-dropout noise are drawn per rank from
``(seed, step, rank, world size)``: deterministic and resumable, but not the one process's draws.
The dead-latent statistics are global (a latent fired if it fired on any rank; the counters advance by the global
batch); the divergence check reads the all-reduced loss; the automatic budget's hold-out evaluation and stopping
decision are made on rank 0 and broadcast; only rank 0 logs, shows progress and writes the checkpoint (then a
barrier). On resume every rank reads the same checkpoint file: with several nodes ``run.dir`` must be on a file
system every node sees (it must anyway, for the features).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from textsae import distributed, native
from textsae._io import (
    atomic_write_text,
    kill_point,
    logger,
    resolve_device,
    stable_hash,
)
from textsae.config.schema import RuntimeConfig, TrainConfig, to_dict
from textsae.errors import UserError
from textsae.rows import FeatureMatrix, check_finite, rows_to_tensor
from textsae.runtime import autocast, keep_freed_memory, sae_uses_bf16, set_threads
from textsae.sae import SAEOutput, SparseAutoencoder
from textsae.sae import losses as losses_module
from textsae.sae.reconstruction import reconstruction_metrics
from textsae.sae.topk import TopKSAE
from textsae.train.batches import corrupt, epoch_permutation
from textsae.train.budget import StoppingState, TrainingBudget
from textsae.train.checkpoint import (
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from textsae.train.label_heads import LabelHeads, check_labels
from textsae.train.sharded_dictionary import ShardedTopKSAE, check_shardable, gather_full, shard_tensors
from textsae.train.step_in_backward import StepInBackward

_STOPPING_SAMPLE_ROWS = 2048
"""Without a hold-out, the automatic budget watches the FVU of this many fixed training rows instead."""


@dataclass
class TrainSummary:
    """What a finished training run reports."""

    steps: int
    seconds: float
    resumed_from: int
    final: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    budget: str = ""
    """How the length was set (fixed, or where the automatic budget found the hold-out FVU levelling off)."""
    converged_at: int | None = None
    """Automatic budget: the step at which the hold-out FVU levelled off; ``None`` otherwise."""


class Trainer:
    """Trains ``sae`` on the rows of ``features`` (CSR or dense).

    Args:
        sae: A freshly built SAE (its initialisation from data happens in :meth:`setup`).
        cfg: Training settings.
        features: Training features, ``(n_docs, d_in)``.
        checkpoint_path: Where the resumable state lives; ``None`` disables checkpoints.
        metrics_path: ``metrics.jsonl`` to append to; ``None`` disables the log.
        val_features: Held-out rows for validation FVU/L0 (and the automatic budget's stopping rule), or ``None``.
        labels: Class ids of the training rows; needed only when ``cfg.label_loss_weight`` > 0.
        dense_encoder: ``(weights (m, d_in), bias (m,))`` that fix the SAE's m dense latents to x·weights + bias
            (``train.dense_init=probe``: a classifier's decision values); they get no gradient while training.
        data_fingerprint: A hash of the training data, part of the checkpoint's fingerprint, so a checkpoint of
            another corpus with the same config and shape is not resumed.
        runtime: Device, precision, threads, memory reuse and progress bar (a recipe's ``runtime`` section); default
            :class:`~textsae.config.schema.RuntimeConfig`'s. Changing it never stops a checkpoint from resuming.
    """

    def __init__(
        self,
        sae: SparseAutoencoder,
        cfg: TrainConfig,
        features: FeatureMatrix,
        *,
        checkpoint_path: Path | None = None,
        metrics_path: Path | None = None,
        val_features: FeatureMatrix | None = None,
        labels: np.ndarray | None = None,
        dense_encoder: tuple[np.ndarray, np.ndarray] | None = None,
        data_fingerprint: str | None = None,
        runtime: RuntimeConfig | None = None,
    ) -> None:
        if features.shape[0] == 0:
            raise UserError("No training documents: the feature matrix has 0 rows.")
        if features.shape[1] != sae.d_in:
            raise UserError(f"Features have {features.shape[1]} columns but the SAE expects d_in={sae.d_in}.")
        check_finite(features, "training features")
        if val_features is not None:
            check_finite(val_features, "validation features")
        self.sae = sae
        self.cfg = cfg
        self.runtime = runtime or RuntimeConfig()
        self.data_fingerprint = data_fingerprint
        check_labels(cfg, labels, features.shape[0])
        if cfg.dense_init == "probe" and dense_encoder is None:
            raise UserError(
                "train.dense_init=probe needs the classifier that fixes the dense latents (dense_encoder=...); the pipeline fits it from the training labels."
            )
        self.dense_encoder = dense_encoder
        self.dense_encoder_tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        """``dense_encoder`` as float32 tensors on the CPU, set by :meth:`setup`."""
        self.features = features
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.val_features = val_features
        self.checkpoint_path = checkpoint_path
        self.metrics_path = metrics_path
        self.n_rows = features.shape[0]
        # Full batches only (the short remainder differs every epoch): a 1-row batch has no FVU.
        self.steps_per_epoch = max(1, self.n_rows // cfg.batch_size)
        self.budget = TrainingBudget(cfg, self.steps_per_epoch)
        self.step = 0
        self.resumed_from = 0
        self.stepper: StepInBackward | None = None
        self.world = distributed.world()
        """This process among the ranks (rank 0 of 1 without torchrun); set again when :meth:`setup` joins the group."""
        self.sharded = self.runtime.shard_dictionary == "latents"
        """``runtime.shard_dictionary=latents``: ``self.sae`` is this rank's block of latents while training."""
        if self.sharded:
            check_shardable(sae, cfg, self.world)
        self.full_sae = sae
        """The SAE the caller gave (and gets back trained); while a sharded run trains, ``self.sae`` is its block."""

    # --- phases ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Pick the device, initialise the SAE from data, build the optimizer, and resume if possible."""
        device = resolve_device(self.runtime.device)
        self.world = distributed.setup(device)
        self.device = torch.device(distributed.rank_device(device))
        set_threads(self.runtime.threads)
        native.set_enabled(self.runtime.native_kernels)
        self.use_bf16 = sae_uses_bf16(self.runtime.precision, str(self.device))
        torch.manual_seed(self.cfg.seed)
        sample_rows = np.sort(
            np.random.default_rng([self.cfg.seed, 1]).permutation(self.n_rows)[: self.sae.init_sample_rows()]
        )
        self.sae.init_from_data(rows_to_tensor(self.features, sample_rows, "cpu"))
        self.sae.normalize_decoder_()
        if self.dense_encoder is not None:
            weights, bias = (torch.as_tensor(array, dtype=torch.float32) for array in self.dense_encoder)
            self.dense_encoder_tensors = weights, bias
            _with_dense_encoder(self.sae).set_dense_encoder(weights, bias)
        if self.sharded:  # the whole SAE was initialised as one process does it; each rank keeps its block
            self.sae = ShardedTopKSAE.from_full(cast(TopKSAE, self.full_sae), self.world).to(self.device)
            for parameter in self.full_sae.parameters():
                parameter.data = torch.empty(0)  # freed until training ends and gathers the blocks back
        else:
            self.sae.to(self.device)
        if self.device.type == "cpu" and self.runtime.reuse_memory:
            # From here on, weight-sized gradients are reused from the heap, not mapped afresh every step. Not before:
            # the data initialisation's one-off temporaries (decoder rows densified 1,024 at a time) would stay in
            # the heap as holes the step's gradients do not fit (0.6 GB more at 30,000 × 8,192). The setting is
            # process-wide and stays on, so a second Trainer in the same process initialises with it already on.
            keep_freed_memory()
        self.label_heads = LabelHeads.for_training(
            self.cfg, self.sae.n_latents, self.sae.cfg.always_on_latents, self.labels
        )
        if self.label_heads is not None:
            self.label_heads.to(self.device)
        parameters = list(self.sae.parameters()) + (list(self.label_heads.parameters()) if self.label_heads else [])
        # The fused kernel is ~8x the default foreach Adam on CPU at 30k × 4,096 (one pass over p, g, m, v
        # instead of a temporary per op); same update rule. Other device types keep the default.
        fused = True if self.device.type in ("cpu", "cuda") else None
        self.optimizer = torch.optim.Adam(parameters, lr=self.cfg.lr, betas=self.cfg.adam_betas, fused=fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda)
        fixed = self.sae.cfg.always_on_latents if self.dense_encoder is not None else 0
        if self.stepper is not None:  # setup() again: one set of hooks only
            self.stepper.remove()
        self.stepper = StepInBackward(
            self.sae,
            self.optimizer,
            parameters,
            fixed_dense_latents=fixed,
            reduce_gradients=self.world.distributed and not self.sharded,
        )
        self.samples_since_fired = torch.zeros(self.sae.n_latents, dtype=torch.long, device=self.device)
        self.budget.state = StoppingState()
        path = self.checkpoint_path
        if path is not None and distributed.on_main(path.exists):  # one decision, then every rank reads the file
            self._resume(path)  # the checkpoint's Adam state
        else:
            _allocate_adam_state(self.optimizer)
            self._truncate_metrics(0)  # a run killed before its first checkpoint starts its log afresh

    @property
    def total_steps(self) -> int:
        """Steps of this run as far as known now (the automatic budget's cap until it decides to stop)."""
        return self.budget.total_steps

    def train(self) -> TrainSummary:
        """Run :meth:`setup` and every remaining step; returns a summary with validation metrics."""
        self.setup()
        start = time.perf_counter()
        progress = _progress_bar(self.total_steps, self.step, enabled=self.runtime.progress and self.world.is_main)
        running: dict[str, float] = {}
        while self.step < self.total_steps:
            metrics = self.train_step()
            self.step += 1
            if self.device.type == "cpu" or self.step % self.cfg.log_every == 0:  # on GPU, no sync every step
                self._stop_if_diverged(metrics["loss"])
            kill_point("train-step")
            progress.update(1)
            if self.budget.wants_evaluation(self.step):
                self._check_convergence(progress)
            if self.step % self.cfg.log_every == 0 or self.step == self.total_steps:
                running = {name: float(value) for name, value in metrics.items()}
                progress.set_postfix(
                    loss=f"{running['loss']:.4g}",
                    fvu=f"{running['fvu']:.3f}",
                    l0=f"{running['l0']:.1f}",
                    dead=f"{100 * running['dead_fraction']:.1f}%",
                )
                self._log({"step": self.step, **running})
                if (
                    progress.disable
                    and self.runtime.progress
                    and self.world.is_main
                    and self.step % max(self.total_steps // 10, self.cfg.log_every) < self.cfg.log_every
                ):
                    logger.info(
                        "step %d/%d: %s",
                        self.step,
                        self.total_steps,
                        ", ".join(f"{k}={v:.4g}" for k, v in running.items()),
                    )
            if self.checkpoint_path is not None and (
                self.step % self.cfg.checkpoint_every == 0 or self.step == self.total_steps
            ):
                self._stop_if_diverged(metrics["loss"], weights=True)
                self.save_checkpoint()
        progress.close()
        self._stop_if_diverged(torch.zeros(()), weights=True)
        if self.stepper is not None:  # always, once setup() ran
            self.stepper.remove()
        self.sae.fixed_columns = 0  # trained: encode exactly as the saved and reloaded SAE will (no gradient needed)
        if self.sharded:  # every rank evaluates its block, then the blocks make the whole SAE again
            validation = self._final_validation()
            self._unshard()
        else:
            validation = distributed.on_main(self._final_validation)
        if validation:
            self._log({"step": self.step, "final": True, **{f"val_{k}": v for k, v in validation.items()}})
        return TrainSummary(
            self.total_steps,
            time.perf_counter() - start,
            self.resumed_from,
            running,
            validation,
            self.budget.describe(),
            self.budget.state.converged_at,
        )

    def _final_validation(self) -> dict[str, float]:
        return self.evaluate(self.val_features) if self.val_features is not None and self._has_holdout() else {}

    def _stop_if_diverged(self, loss: torch.Tensor, *, weights: bool = False) -> None:
        """Raise a UserError when the loss (or, with ``weights``, any parameter) is not finite.

        Nothing is saved then, and the checkpoint goes too: resuming the same settings would diverge the same way, and
        with changed ones it would be refused as another config's.
        """
        finite = bool(torch.isfinite(loss))
        if finite and weights:
            finite = all(bool(torch.isfinite(p).all()) for p in self.sae.parameters())
            if self.sharded:  # each rank checked its own block: one decision for all
                finite = bool(distributed.all_reduce_(torch.tensor([float(finite)]), "min"))
        if finite:
            return
        if self.checkpoint_path is not None and self.world.is_main:
            self.checkpoint_path.unlink(missing_ok=True)
        what = f"the loss is {float(loss)}" if not bool(torch.isfinite(loss)) else "the SAE's weights are not finite"
        raise UserError(
            f"Training diverged at step {self.step}: {what}. Likely causes: train.lr={self.cfg.lr:g} is too high "
            f"(try {self.cfg.lr / 10:g}), or features with extreme values. Nothing was saved as trained and the "
            "checkpoint was removed; re-run with changed settings."
        )

    def _check_convergence(self, progress: Any) -> None:
        """Automatic budget: measure the hold-out FVU, log it, and let the budget decide whether to start the cooldown.

        With several processes rank 0 measures and decides; every rank gets its stopping state.
        """

        def measure() -> dict[str, float]:
            if self.val_features is not None and self._has_holdout():
                return self.evaluate(self.val_features)
            # a corpus too small for a hold-out: watch fixed training rows instead
            order = np.random.default_rng([self.cfg.seed, 3]).permutation(self.n_rows)
            return self.evaluate(self.features[np.sort(order[:_STOPPING_SAMPLE_ROWS])])

        measured = measure() if self.sharded else None  # a sharded SAE evaluates on every rank together

        def decide() -> tuple[bool, StoppingState]:
            metrics = measured if measured is not None else measure()
            self._log({"step": self.step, **{f"val_{k}": v for k, v in metrics.items()}})
            return self.budget.observe(self.step, metrics["fvu"]), self.budget.state

        converged, self.budget.state = distributed.on_main(decide)
        if converged:
            state = self.budget.state
            logger.info(
                "Hold-out FVU levelled off at step %d (best %.4g at step %d); decaying the learning rate until step %d",
                self.step,
                state.best_fvu,
                state.best_step,
                self.total_steps,
            )
            progress.total = self.total_steps
            progress.refresh()

    def _has_holdout(self) -> bool:
        return self.val_features is not None and self.val_features.shape[0] >= 2

    def train_step(self) -> dict[str, torch.Tensor]:
        """One optimiser step on the batch that belongs to ``self.step``; returns detached metrics."""
        sae = self.sae
        sae.train()
        global_rows = self._batch_rows(self.step)
        data_parallel = self.world.distributed and not self.sharded  # sharded: every rank reads the whole batch
        rows = (
            global_rows[distributed.rank_slice(len(global_rows), current=self.world)] if data_parallel else global_rows
        )
        share = len(rows) / len(global_rows)  # its weight in the global batch's mean
        x = rows_to_tensor(self.features, rows, self.device)
        seed = [self.cfg.seed, self.step] + ([self.world.rank, self.world.size] if data_parallel else [])
        generator = torch.Generator().manual_seed(int(stable_hash(seed, 8), 16))
        x_in = corrupt(x, self.cfg.corruption, self.cfg.corruption_p, generator)
        with self._autocast():
            out = sae(x_in)
            target = sae.normalize(x) if x_in is not x else None
            losses = sae.loss(out, target=target, dead_mask=self.samples_since_fired >= sae.cfg.dead_after)
            total = losses.total
            label_ce = torch.zeros((), device=self.device)
            if self.label_heads is not None and self.labels is not None:
                batch_labels = self.labels[torch.from_numpy(rows)].to(self.device)
                label_term, label_ce = self.label_heads.training_loss(out.codes, batch_labels, generator, sae.d_in)
                total = total + label_term
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
        self.optimizer.zero_grad(set_to_none=True)
        (total * share if data_parallel else total).backward()  # StepInBackward steps each parameter
        if self.stepper is not None:
            self.stepper.finish_backward()
        self.scheduler.step()
        # b_dec moved, and the encoder subtracts it: re-fix the dense latents' bias
        if self.dense_encoder_tensors is not None:
            _with_dense_encoder(sae).set_dense_encoder(*(t.to(self.device) for t in self.dense_encoder_tensors))
        with torch.no_grad():
            fired, l0 = _fired_latents(sae, out)
            metrics = {
                "loss": total.detach(),
                "label_ce": label_ce.detach(),
                "reconstruction": losses.reconstruction.detach(),
                "sparsity": losses.sparsity.detach(),
                "auxk": losses.auxk.detach(),
                "fvu": losses.fvu.detach(),
                "l0": l0,
            }
            if data_parallel:
                fired, metrics = self._reduce_step(fired, metrics, share)
                metrics["fvu"] = self._global_fvu(out, target, len(global_rows))
            self.samples_since_fired += len(global_rows)
            self.samples_since_fired[fired] = 0
            dead = (self.samples_since_fired >= sae.cfg.dead_after).float()
            metrics["dead_fraction"] = dead.mean()
            if self.sharded:  # L0 and dead latents summed over the blocks; the loss terms are every rank's already
                counts = distributed.all_reduce_(torch.stack([metrics["l0"], dead.sum()]), "sum")
                metrics["l0"], metrics["dead_fraction"] = counts[0], counts[1] / self.full_sae.n_latents
        metrics["lr"] = torch.tensor(lr)
        return metrics

    def _reduce_step(
        self, fired: torch.Tensor, metrics: dict[str, torch.Tensor], share: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Several processes: the latents that fired on any rank, and each metric's rank-weighted mean (the global
        batch's value for the per-row means), identical on every rank."""
        fired_any = distributed.all_reduce_(fired.to(torch.int32), "max").bool()
        stacked = torch.stack([value.float() * share for value in metrics.values()])
        distributed.all_reduce_(stacked, "sum")
        buffers = [b for name, b in self.sae.named_buffers() if name not in ("input_scale", "input_shift")]
        for buffer in buffers:  # state updated from the rank's own rows (BatchTopK's threshold): kept equal
            distributed.all_reduce_(buffer, "mean")
        return fired_any, dict(zip(metrics, stacked.unbind(), strict=True))

    def evaluate(self, features: FeatureMatrix) -> dict[str, float]:
        """FVU and L0 of the inference codes (``decode(encode(x))``) on ``features``, in normalised space.

        A sharded SAE evaluates on every rank together (each rank's L0 counts its own latents: summed here).
        """
        metrics = reconstruction_metrics(self.sae, features, device=self.device, bf16=self.use_bf16)
        if self.sharded and isinstance(self.sae, ShardedTopKSAE):
            metrics["l0"] = float(distributed.all_reduce_(torch.tensor([metrics["l0"]], dtype=torch.float64), "sum"))
        return metrics

    def _global_fvu(self, out: SAEOutput, target: torch.Tensor | None, n_rows: int) -> torch.Tensor:
        """The global batch's FVU from the ranks' sums (error, squares, column sums), as one process computes it."""
        x = SparseAutoencoder._loss_target(out, target)
        error = losses_module.squared_error_per_sample(x, out.x_hat.detach()).sum().double().reshape(1)
        if x.layout == torch.sparse_csr:
            _, cols, values = losses_module.csr_parts(x)
            values = values.double()
            columns = torch.zeros(x.shape[1], dtype=torch.float64, device=values.device).index_add_(0, cols, values)
        else:
            values = x.double().reshape(-1)
            columns = x.double().sum(dim=0)
        sums = distributed.all_reduce_(torch.cat([error, values.square().sum().reshape(1), columns]), "sum")
        variance = (sums[1] - sums[2:].square().sum() / n_rows).clamp_min(0.0)
        return (sums[0] / losses_module.variance_to_explain(variance, sums[1])).float()

    def save_checkpoint(self) -> None:
        """Write model, optimizer and dead-latent state for resuming; atomic.

        Raises:
            ValueError: The trainer has no ``checkpoint_path``.
        """
        path = self.checkpoint_path
        if path is None:
            raise ValueError("Trainer.save_checkpoint needs a trainer made with checkpoint_path=...")
        tensors, optim_meta = self._checkpoint_tensors()  # a collective when sharded
        if self.world.is_main:
            self._write_checkpoint(path, tensors, optim_meta)
        distributed.barrier()  # no rank runs ahead of (or gets killed before) a checkpoint that is not whole yet

    def _checkpoint_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The checkpoint's tensors (a sharded SAE's blocks gathered whole, on rank 0) and the optimizer's scalars."""
        tensors = {f"model.{name}": value for name, value in self.sae.state_dict().items()}
        if self.label_heads is not None:
            tensors.update(self.label_heads.state_dict())  # head.* and dense_head.*
        optim_tensors, optim_meta = optimizer_tensors(self.optimizer)
        tensors.update(optim_tensors)
        tensors["tracker.samples_since_fired"] = self.samples_since_fired
        if isinstance(self.sae, ShardedTopKSAE):
            tensors = gather_full(tensors, self.sae, self._parameter_of_key(tensors), everywhere=False)
        return tensors, optim_meta

    def _parameter_of_key(self, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
        """Which SAE parameter (or ``W_enc``'s latents, for the tracker) each checkpoint key is split like."""
        names = [name for name, _ in self.sae.named_parameters()]
        mapping = {"tracker.samples_since_fired": "b_enc"}  # one entry per latent, like b_enc
        for key in tensors:
            if key.startswith("model."):
                mapping[key] = key[len("model.") :]
            elif key.startswith("optim."):
                index = int(key.split(".")[1])
                if index < len(names):
                    mapping[key] = names[index]
        return mapping

    def _unshard(self) -> None:
        """Sharded training is over: the blocks of every rank make the whole SAE again (on the CPU, every rank)."""
        shard = self.sae
        assert isinstance(shard, ShardedTopKSAE)
        self.optimizer.state.clear()  # the Adam moments go before the whole weights come
        whole = gather_full(shard.state_dict(), shard, everywhere=True)
        for name, parameter in self.full_sae.named_parameters():
            parameter.data = whole[name]
        self.full_sae.load_state_dict(whole)
        self.full_sae.fixed_columns = shard.fixed_columns
        self.full_sae.train(shard.training)
        self.sae = self.full_sae
        self.device = torch.device("cpu")

    def _write_checkpoint(self, path: Path, tensors: dict[str, torch.Tensor], optim_meta: dict[str, Any]) -> None:
        state = {
            "step": self.step,
            "fingerprint": self._fingerprint(),
            "optimizer": optim_meta,
            "stopping": self.budget.state.to_dict(),
        }
        save_checkpoint(path, tensors, state)

    # --- helpers ----------------------------------------------------------------------------

    def _resume(self, path: Path) -> None:
        tensors, state = load_checkpoint(path)
        if state.get("fingerprint") != self._fingerprint():
            raise UserError(
                f"Checkpoint {path} was written for a different config or data; "
                "delete it (or choose another run.dir) to train from scratch."
            )
        if isinstance(self.sae, ShardedTopKSAE):  # the same file as unsharded training's: this rank's blocks of it
            tensors = shard_tensors(tensors, self.sae, self._parameter_of_key(tensors))
        model_state = {name[len("model.") :]: value for name, value in tensors.items() if name.startswith("model.")}
        try:
            self.sae.load_state_dict(model_state)
            if self.label_heads is not None:
                self.label_heads.load_checkpoint_tensors(tensors)
            restore_optimizer(self.optimizer, tensors, state["optimizer"])
            self.samples_since_fired = tensors["tracker.samples_since_fired"].to(self.device)
            self.budget.state = StoppingState.from_dict(state.get("stopping") or {})
        except UserError:
            raise  # already names the checkpoint's problem (a UserError is a ValueError too)
        except (RuntimeError, KeyError, ValueError, TypeError) as error:
            detail = " ".join(str(error).split())[:240] or type(error).__name__
            raise UserError(
                f"Checkpoint {path} does not match this SAE and optimizer ({detail}); "
                "it was damaged or written by another program: delete it to train from scratch."
            ) from None
        self.step = self.resumed_from = int(state["step"])
        self.scheduler.last_epoch = self.step  # the restored param_groups already hold lr for this step
        self._truncate_metrics(self.step)
        logger.info("Resumed training from step %d of %d (%s)", self.step, self.total_steps, path)

    def _batch_rows(self, step: int) -> np.ndarray:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = epoch_permutation(self.n_rows, self.cfg.seed, epoch)
        return np.sort(order[index * self.cfg.batch_size : (index + 1) * self.cfg.batch_size])

    def _lr_lambda(self, step: int) -> float:
        return self.budget.lr_factor(step)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.device, "bf16" if self.use_bf16 else "fp32")

    def _fingerprint(self) -> str:
        return stable_hash(
            {
                "train": to_dict(self.cfg),  # the runtime section (device, threads …) may change on resume
                "sae": to_dict(self.sae.cfg),
                "shape": list(self.features.shape),
                "total_steps": self.budget.fixed_steps,
                **({"data": self.data_fingerprint} if self.data_fingerprint else {}),
            }
        )

    def _log(self, record: dict[str, Any]) -> None:
        if self.metrics_path is None or not self.world.is_main:
            return
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from, so the log matches an uninterrupted run."""
        if self.metrics_path is None or not self.world.is_main or not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the interruption
            if record.get("step", 0) <= step and not record.get("final"):
                kept.append(line)
        atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))


def _allocate_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter its Adam state now (zero moments, step 0: what the first step would create).

    Created lazily inside the first backward, the weight-sized moments land between that step's temporaries, and the
    holes they leave make later weight-sized gradients grow the heap: a 30,000 × 8,192 TF-IDF SAE peaked at 9.4-10.1
    GiB that way and at 7.7-8.0 GiB with the state made up front (`/usr/bin/time -v python benchmarks/train_step.py
    --d-in 30000 --n-latents 8192 --k 64 --batch 512 --nnz 200 --label-loss-weight 0 --steps 4`). Goes through the
    optimiser's public ``load_state_dict``; a resumed run loads the checkpoint's state instead.
    """
    state = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state["state"] = {
        index: {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        for index, p in enumerate(params)
    }
    optimizer.load_state_dict(state)


def _fired_latents(sae: SparseAutoencoder, out: SAEOutput) -> tuple[torch.Tensor, torch.Tensor]:
    """Which latents fired in the batch ``(n_latents,)`` bool, and the mean L0; from the active-entry list when the
    architecture makes one (no pass over the dense ``(B, n_latents)`` codes)."""
    if out.active is None:
        active = sae.active_mask(out.codes)  # (B, n_latents)
        return active.any(dim=0), active.sum(dim=1).float().mean()
    nonzero = out.active.values != 0
    fired = torch.zeros(sae.n_latents, dtype=torch.bool, device=nonzero.device)
    fired[out.active.indices[nonzero]] = True
    return fired, nonzero.sum().float() / out.pre_acts.shape[0]


def _with_dense_encoder(sae: SparseAutoencoder) -> TopKSAE:
    """``sae`` as the TopK SAE whose dense latents ``dense_encoder`` fixes (the only architecture that has them).

    Raises:
        UserError: ``sae`` is another architecture.
    """
    if not isinstance(sae, TopKSAE):
        raise UserError(
            f"dense_encoder fixes the dense latents of a TopK SAE (sae.architecture=topk); got {type(sae).__name__}."
        )
    return sae


def _progress_bar(total: int, initial: int, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        disable=None if enabled else True,
        dynamic_ncols=True,
        leave=False,
    )


def holdout_split(n_rows: int, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices ``(train, holdout)``: ``cfg.val_fraction`` of the rows held out, seeded by ``cfg.seed``.

    The hold-out gives the validation FVU and drives the automatic budget's stopping rule; fewer than two
    held-out rows have no variance to explain, so then nothing is held out.
    """
    order = np.random.default_rng([cfg.seed, 2]).permutation(n_rows)
    n_val = round(cfg.val_fraction * n_rows)
    n_val = n_val if n_val >= 2 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])
