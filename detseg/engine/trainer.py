"""The training loop: step, log, evaluate, checkpoint; exact resume; wall-clock budgets.

The loop is here; its parts beside it: budget.py (the time budget and its schedule refits),
train_state.py (what a checkpoint holds, what a resume checks and restores), nonfinite.py
(train.on_nonfinite), precision.py (autocast) and metrics.py (logs and the progress bar).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from detseg.config import Config, config_to_dict, dump_config
from detseg.engine import precision
from detseg.engine.budget import TimeBudget
from detseg.engine.metrics import (MetricsWriter, ProgressBar, TensorBoardLogger, WindowAverage, format_metrics_line,
                                   primary_metric)
from detseg.engine.nonfinite import NonFiniteGuard
from detseg.engine.optim import build_optimizer, build_scheduler, refit_scheduler
from detseg.engine.train_state import ResumeError  # noqa: F401 - what train(resume=True) raises
from detseg.engine.train_state import (RunState, TrainingParts, check_model_fits, check_ranks_agree, check_resume,
                                       plan_changes, restore_rng, restore_schedule)
from detseg.structures import Batch
from detseg.utils import distributed as du
from detseg.utils.checkpoint import load_checkpoint, save_checkpoint
from detseg.utils.files import remove_stale_temp_files
from detseg.utils.rng import get_rng_state, preserved_rng, seed_everything

LoaderFactory = Callable[[int], Iterable[Batch]]
EvaluateFn = Callable[[nn.Module], dict[str, Any]]


class Trainer:
    """Trains `model` on batches from `train_loader_factory(start_index)`.

    start_index is the number of samples already consumed over all ranks
    (iteration * cfg.data.batch_size), so a resumed run can restart its sampler
    (see InfiniteSampler) exactly where the previous run stopped. The factory should
    build its loader eagerly (return a DataLoader, not a lazy generator) so the
    trainer can keep the loader's seed draw out of the training RNG stream.
    `evaluate_fn(model)` gets the unwrapped model, on the training device, in eval
    mode under no_grad, on every rank (each evaluates its shard; see build_test_loader),
    and returns e.g. {"bbox": {"AP": ...}} on rank 0; what other ranks return is ignored.
    """

    def __init__(self, cfg: Config, model: nn.Module, train_loader_factory: LoaderFactory,
                 evaluate_fn: EvaluateFn | None = None, output_dir: str | Path | None = None,
                 clock: Callable[[], float] = time.perf_counter, loggers: Sequence = ()):
        self.cfg, self.model = cfg, model
        self.loader_factory, self.evaluate_fn = train_loader_factory, evaluate_fn
        self.output_dir = Path(output_dir if output_dir is not None else cfg.train.output_dir)
        self.clock = clock  # injectable so tests can fake the wall clock
        self.extra_loggers = list(loggers)  # besides TensorBoard: e.g. the app's MLflow run (rank 0 only)
        self.iteration = 0
        self.max_iters = cfg.train.max_iters
        self.budget = TimeBudget(cfg.train.max_minutes, cfg.train.max_iters, clock)
        self.nonfinite = NonFiniteGuard(cfg.train.on_nonfinite, say=lambda message: self._say(message))
        self.best_metric: float | None = None
        self.last_metrics: dict[str, Any] = {}
        # undecodable images the loader skipped (data.on_bad_sample=skip), each once however many epochs
        self.skipped_images: dict[str, None] = {}
        self._last_eval_iter = self._last_save_iter = -1

    @property
    def skipped_steps(self) -> int:
        """Updates dropped under train.on_nonfinite=skip, in the whole job."""
        return self.nonfinite.skipped

    # ---------------------------------------------------------------- main flow
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Run to max_iters (or the time budget); returns the last evaluation's metrics."""
        self._setup()
        if resume:
            self._resume()
        check_ranks_agree(self.iteration, self.output_dir / "last.pt")
        self.ddp_model = self._wrap_ddp()
        self.budget.start(self.iteration)
        self.progress = ProgressBar(self.iteration, self.max_iters, enabled=self.is_main)
        try:
            self._loop()
            self._finish()
        finally:
            self.progress.close()
            self.writer.close()
        return self.last_metrics

    def _loop(self) -> None:
        batches = self._batches()
        try:
            while self.iteration < self.max_iters and not self._out_of_time():
                self._train_one(batches)
                self._fit_schedule_to_budget()
                self._log()
                self._maybe_checkpoint()
                self._maybe_evaluate()
        finally:
            batches.close()  # drop the DataLoader iterator now so its workers exit

    def _train_one(self, batches: Iterator[Batch]) -> None:
        """One iteration: fetch a batch, take the step, count it, record its losses and times."""
        start = self.clock()
        batch = next(batches)
        data_time = self.clock() - start
        lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses
        losses = self._run_step(batch)
        self.iteration += 1
        if losses is not None:  # None: a skipped non-finite step, nothing to average
            self._record(losses, lr, data_time, self.clock() - start)

    def _finish(self) -> None:
        self._log(force=True)
        self._maybe_checkpoint(force=True)
        self._maybe_evaluate(force=True)
        du.barrier()

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        self.rank, self.world_size = du.get_rank(), du.get_world_size()
        self.is_main = self.rank == 0
        seed_everything(self.cfg.train.seed + self.rank)  # ranks must not draw the same augmentations
        self.device = du.select_device(self.cfg.train.device)
        self.nonfinite.place(self.device, self.rank)
        precision.prepare_model(self.model, self.cfg.train, self.device).train()
        self.optimizer = build_optimizer(self.model, self.cfg.solver)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.solver, self.max_iters)
        self.amp_dtype = self._amp_dtype()
        self.scaler = self._make_scaler()
        self.window, self.times = WindowAverage(), {"time": 0.0, "data_time": 0.0}
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temp_files(self.output_dir):
                self._say(f"removed {stale.name}, left by a run killed while writing it")
            dump_config(self.cfg, self.output_dir / "config.yaml")  # written atomically
        own = [TensorBoardLogger(self.output_dir)] if "tensorboard" in self.cfg.train.loggers else []
        self.writer = MetricsWriter(self.output_dir, enabled=self.is_main, loggers=[*own, *self.extra_loggers])

    def _make_scaler(self) -> torch.amp.GradScaler:
        # bf16 has fp32's exponent range, so only fp16 needs loss scaling.
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def _amp_dtype(self) -> torch.dtype | None:
        dtype = precision.amp_dtype(self.cfg.train.amp, self.device)
        if dtype is not None:
            self._say(f"mixed precision: autocast to {dtype} on {self.device.type}")
        return dtype

    def _wrap_ddp(self) -> nn.Module:
        if self.world_size == 1:
            return self.model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        find_unused = self.cfg.train.find_unused_parameters
        return DistributedDataParallel(self.model, device_ids=device_ids, find_unused_parameters=find_unused)

    def _batches(self) -> Iterator[Batch]:
        """Endless batches; a finite loader is rebuilt from the current sample index."""
        while True:
            # Starting a DataLoader iterator draws its worker base seed from torch's RNG;
            # keep that draw out of the training stream so a resumed run (which starts a
            # new iterator mid-run) matches a straight one.
            with preserved_rng():
                batches = iter(self.loader_factory(self.iteration * self.cfg.data.batch_size))
            empty = True
            for batch in batches:
                empty = False
                self.skipped_images.update(dict.fromkeys(batch.skipped_images))  # named at the end of the run
                yield batch
            if empty:
                raise RuntimeError("train_loader_factory returned an empty loader")

    # ---------------------------------------------------------------- one step
    def _run_step(self, batch: Batch) -> dict[str, torch.Tensor] | None:
        batch = batch.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            losses = self.ddp_model(batch, mode="loss")
        if not losses:
            raise ValueError("model(batch, mode='loss') returned no losses")
        total = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        # Checked after backward (its kernels are already queued) but before the update,
        # so the weights never take a non-finite step.
        finite = self.nonfinite.loss_ok(total, losses, self.iteration + 1) and self._clip_gradients(total, losses)
        if finite:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.zero_grad(set_to_none=True)  # drop the non-finite gradients
        self.scheduler.step()  # the schedule follows the iteration count, skipped or not
        return {"loss": total.detach(), **{k: v.detach() for k, v in losses.items()}} if finite else None

    def _clip_gradients(self, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> bool:
        """Clip to solver.clip_grad_norm; False when the norm is non-finite and the step is skipped."""
        clip = self.cfg.solver.clip_grad_norm
        if not clip:
            return True
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        # Under fp16 loss scaling an inf norm is the scaler's business: it skips and lowers the scale.
        return self.scaler.is_enabled() or self.nonfinite.grad_norm_ok(norm, total, losses, self.iteration + 1)

    def _record(self, losses: dict[str, torch.Tensor], lr: float, data_time: float, step_time: float) -> None:
        self.window.add(losses)
        self.last_lr = lr
        self.times["time"] += step_time
        self.times["data_time"] += data_time
        self.progress.update()

    # ---------------------------------------------------------------- hooks
    def _due(self, period: int) -> bool:
        return period > 0 and self.iteration % period == 0

    def _log(self, force: bool = False) -> None:
        if self.window.count == 0 or not (force or self._due(self.cfg.train.log_period)):
            return
        averages = du.all_reduce_mean(self.window.averages())  # one sync per log period
        count = self.window.count
        record = {"type": "train", "iter": self.iteration, "lr": self.last_lr,
                  **{k: v.item() for k, v in averages.items()},
                  **{k: v / count for k, v in self.times.items()}}
        if self.skipped_steps:  # only once something was skipped, so clean runs log the usual keys
            record["skipped_steps"] = self.skipped_steps
        if self.device.type == "cuda":
            record["max_mem_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.writer.write(record, self.iteration)
        self.progress.show(record, eta_s=(self.max_iters - self.iteration) * record["time"])
        self.window.reset()
        self.times = {"time": 0.0, "data_time": 0.0}

    def _maybe_checkpoint(self, force: bool = False) -> None:
        if self._last_save_iter == self.iteration:
            return  # the end of a run that just saved on its checkpoint period
        if force or self._due(self.cfg.train.checkpoint_period):
            self._save("last.pt")

    def _maybe_evaluate(self, force: bool = False) -> None:
        if self.evaluate_fn is None or self._last_eval_iter == self.iteration:
            return
        if not (force or self._due(self.cfg.train.eval_period)):
            return
        self._last_eval_iter = self.iteration
        metrics = self._evaluate()
        improved = du.broadcast_object(self._update_best(metrics) if self.is_main else False)
        if improved:
            self._save("best.pt")
            if self._last_save_iter == self.iteration:
                self._save("last.pt")  # keep last.pt's best_metric current for resume

    def _evaluate(self) -> dict[str, Any]:
        """Every rank evaluates the unwrapped model on its shard of the data (the evaluators gather
        on rank 0, a collective); the training RNG streams are left untouched."""
        du.broadcast_buffers(self.model)  # evaluate what rank 0 checkpoints
        self.model.eval()
        with self.budget.not_charged(), preserved_rng(), torch.no_grad():
            metrics = self.evaluate_fn(self.model) or {}
        self.model.train()
        metrics = metrics if self.is_main else {}
        if self.is_main:
            record = {"type": "eval", "iter": self.iteration, "train_minutes": round(self.budget.elapsed() / 60, 3)}
            self.writer.write({**record, **_jsonable(metrics)}, self.iteration)
            self._say(f"eval @ {self.iteration} ({record['train_minutes']:.1f} training min): "
                      f"{format_metrics_line(_jsonable(metrics))}")
        du.barrier()
        self.last_metrics = metrics
        return metrics

    def _update_best(self, metrics: dict[str, Any]) -> bool:
        found = primary_metric(metrics)
        if found is None:
            return False
        _, value = found
        if self.best_metric is not None and not value > self.best_metric:
            return False
        self.best_metric = value
        return True

    # ---------------------------------------------------------------- checkpoints
    def _parts(self) -> TrainingParts:
        return TrainingParts(self.model, self.optimizer, self.scheduler, self.scaler)

    def _run_state(self) -> RunState:
        return RunState(iteration=self.iteration, max_iters=self.max_iters, schedule_fitted=self.budget.fitted,
                        elapsed_s=self.budget.elapsed(), best_metric=self.best_metric,
                        skipped_steps=self.skipped_steps, world_size=self.world_size,
                        rng=du.all_gather_object(get_rng_state()), config=config_to_dict(self.cfg))

    def _save(self, name: str) -> None:
        state = self._run_state().checkpoint(self._parts())  # every rank takes part (RNG gather)
        if self.is_main:
            save_checkpoint(self.output_dir / name, state)
        self._last_save_iter = self.iteration

    def _resume(self) -> None:
        path = self.output_dir / "last.pt"
        if not path.is_file():
            self._say(f"resume: no checkpoint at {path}, starting from scratch")
            return
        checkpoint = load_checkpoint(path, map_location="cpu")
        saved = RunState.from_checkpoint(checkpoint)
        for change in check_resume(path, self.cfg, saved, self.world_size):
            self._say(f"WARNING resume from {path}: {change}")
        check_model_fits(path, self.model, checkpoint["model"])
        self._parts().load(checkpoint)
        self.iteration, self.best_metric = saved.iteration, saved.best_metric
        self.nonfinite.skipped = saved.skipped_steps
        self._restore_plan(saved)
        if not restore_rng(saved, self.rank, self.world_size):
            self._say("resume: RNG states not restored (saved with another world size); using fresh seeds")
        self._say(f"resumed from {path} at iteration {self.iteration}/{self.max_iters}")

    def _restore_plan(self, saved: RunState) -> None:
        """Go on with the saved plan, or with the config's when it changed (schedule re-fitted, said once)."""
        changed = plan_changes(self.cfg, saved)
        self.budget.resume(saved.elapsed_s, fitted=saved.schedule_fitted and not changed)
        self.max_iters = restore_schedule(saved, self.scheduler, self.cfg, replan=bool(changed))
        if changed:
            timed = (f", to be re-timed against the {self.cfg.train.max_minutes} min budget"
                     if self.budget.seconds is not None else "")
            self._say(f"resume: plan changed: {', '.join(changed)}; schedule re-fitted from iteration "
                      f"{self.iteration} to {self.max_iters}{timed}")

    # ---------------------------------------------------------------- time budget
    def _out_of_time(self) -> bool:
        if self.budget.seconds is None:
            return False
        stop = du.any_rank_true(self.budget.out_of_time(), self.device)  # all ranks must stop at the same step
        if stop:
            self._say(f"time budget of {self.cfg.train.max_minutes} min reached at iteration {self.iteration}")
        return stop

    def _fit_schedule_to_budget(self) -> None:
        """Shorten the run (and its lr schedule) to what fits the time budget when a fit is due
        (see TimeBudget). Rank 0's fit is broadcast, so every rank refits alike."""
        refit = self.budget.refit_due(self.iteration)
        if refit is None:
            return
        refit = du.broadcast_object(refit)
        self.budget.adopt(refit)
        before, self.max_iters = self.max_iters, refit.max_iters
        refit_scheduler(self.scheduler, self.cfg.solver, refit.max_iters, self.cfg.train.max_iters)
        self.progress.set_total(refit.max_iters)
        self._say(f"time budget {self.cfg.train.max_minutes} min at {refit.sec_per_iter:.3f} s/it "
                  f"(iteration {self.iteration}): max_iters {before} -> {refit.max_iters}")

    def _say(self, message: str) -> None:
        if getattr(self, "is_main", True):
            tqdm.write(message)


def _jsonable(tree: Any) -> Any:
    """Metric dicts may hold numpy scalars or tensors; JSON wants plain numbers."""
    if isinstance(tree, dict):
        return {str(k): _jsonable(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_jsonable(v) for v in tree]
    if isinstance(tree, (str, int, float, bool)) or tree is None:
        return tree
    if hasattr(tree, "item"):
        return tree.item() if getattr(tree, "ndim", 0) == 0 else tree.tolist()
    return str(tree)
