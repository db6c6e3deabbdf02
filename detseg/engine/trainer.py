"""The training loop: step, log, evaluate, checkpoint; exact resume; wall-clock budgets."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from detseg.config import Config, config_to_dict, dump_config
from detseg.utils import distributed as du
from detseg.engine import precision
from detseg.utils.checkpoint import load_checkpoint, remove_stale_temp_files, save_checkpoint
from detseg.engine.metrics import MetricsWriter, ProgressBar, WindowAverage, format_metrics_line, primary_metric
from detseg.engine.optim import build_optimizer, build_scheduler, iters_in_budget, refit_scheduler
from detseg.structures import Batch
from detseg.utils.rng import get_rng_state, preserved_rng, seed_everything, set_rng_state

NONFINITE_POLICIES = ("error", "skip")
# (section, key, "refuse" | "warn"): config changes between a checkpoint and its resume.
# batch_size: the sampler position is iteration * batch_size, so samples would be skipped or
# repeated and lr no longer matches the batch; num_classes: the heads' shapes change.
# max_iters: raising it is how a run is extended, so it is allowed but announced.
RESUME_CHECKS = (("data", "batch_size", "refuse"), ("model", "num_classes", "refuse"),
                 ("model", "arch", "refuse"), ("train", "max_iters", "warn"), ("solver", "lr", "warn"))


class ResumeError(ValueError):
    """--resume with a config that is incompatible with the checkpoint's."""

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

    FIT_SKIP = 5  # first iterations excluded from the speed estimate (allocator, cudnn autotune, workers starting)
    FIT_WINDOW = 20  # iterations timed to estimate seconds per iteration
    # The first estimate runs while the machine is still warming up (caches, page faults, other
    # jobs settling) and has been 10-20% pessimistic on a 2-core CPU; refits at these fractions of
    # the budget, each timed over the iterations since the previous fit, follow the real speed.
    REFIT_FRACTIONS = (0.3, 0.6)

    def __init__(self, cfg: Config, model: nn.Module, train_loader_factory: LoaderFactory,
                 evaluate_fn: EvaluateFn | None = None, output_dir: str | Path | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.cfg, self.model = cfg, model
        self.loader_factory, self.evaluate_fn = train_loader_factory, evaluate_fn
        self.output_dir = Path(output_dir if output_dir is not None else cfg.train.output_dir)
        self.clock = clock  # injectable so tests can fake the wall clock
        self.iteration = 0
        self.max_iters = cfg.train.max_iters
        self.schedule_fitted = False
        self._fit_mark: tuple[int, float] | None = None  # (iteration, clock) where the speed is timed from
        self._refits_left = list(self.REFIT_FRACTIONS)
        self._next_refit = -1  # iteration of the next refit (-1: none planned)
        self.best_metric: float | None = None
        self.elapsed_before = 0.0  # seconds spent by earlier (resumed-from) runs of this job
        self.last_metrics: dict[str, Any] = {}
        self.skipped_steps = 0  # updates dropped under train.on_nonfinite=skip
        self.eval_seconds = 0.0  # spent evaluating in this job: not training time, not charged to the budget
        # undecodable images the loader skipped (data.on_bad_sample=skip), each once however many epochs
        self.skipped_images: dict[str, None] = {}
        if cfg.train.on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"train.on_nonfinite must be one of {NONFINITE_POLICIES}, got {cfg.train.on_nonfinite!r}")
        self._last_eval_iter = self._last_save_iter = -1

    # ---------------------------------------------------------------- main flow
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Run to max_iters (or the time budget); returns the last evaluation's metrics."""
        self._setup()
        if resume:
            self._resume()
        self._check_ranks_agree()
        self.ddp_model = self._wrap_ddp()
        self.start_time, self.start_iter = self.clock(), self.iteration
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
                start = self.clock()
                batch = next(batches)
                data_time = self.clock() - start
                lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses
                losses = self._run_step(batch)
                self.iteration += 1
                if losses is not None:  # None: a skipped non-finite step, nothing to average
                    self._record(losses, lr, data_time, self.clock() - start)
                self._fit_schedule_to_budget()
                self._log()
                self._maybe_checkpoint()
                self._maybe_evaluate()
        finally:
            batches.close()  # drop the DataLoader iterator now so its workers exit

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
        precision.prepare_model(self.model, self.cfg.train, self.device).train()
        self.optimizer = build_optimizer(self.model, self.cfg.solver)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.solver, self.max_iters)
        self.amp_dtype = self._amp_dtype()
        self.scaler = self._make_scaler()
        self.window, self.times = WindowAverage(), {"time": 0.0, "data_time": 0.0}
        if self.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for stale in remove_stale_temp_files(self.output_dir):
                self._say(f"removed {stale.name}, left by a run killed while saving a checkpoint")
            dump_config(self.cfg, self.output_dir / "config.yaml")
        self.writer = MetricsWriter(self.output_dir, enabled=self.is_main)

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
        finite = self._check_finite(total, losses) and self._clip_gradients(total, losses)
        if finite:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()  # the schedule follows the iteration count, skipped or not
        if not finite:
            return None
        return {"loss": total.detach(), **{k: v.detach() for k, v in losses.items()}}

    def _check_finite(self, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> bool:
        finite = bool(torch.isfinite(total).item())
        # All ranks decide together; one rank raising alone would leave the others hanging.
        if du.all_ranks_true(finite, self.device):
            return True
        terms = ", ".join(f"{k}={v.item():.6g}" for k, v in losses.items())
        where = f"rank {self.rank}" if not finite else f"another rank (this is rank {self.rank})"
        return self._nonfinite(f"non-finite loss at iteration {self.iteration + 1} on {where}: "
                               f"total={total.item():.6g}, {terms}")

    def _clip_gradients(self, total: torch.Tensor, losses: dict[str, torch.Tensor]) -> bool:
        """Clip to solver.clip_grad_norm; False when the norm is non-finite and the step is skipped.
        Under fp16 loss scaling an inf norm is the scaler's business: it skips and lowers the scale."""
        clip = self.cfg.solver.clip_grad_norm
        if not clip:
            return True
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        finite = bool(torch.isfinite(norm).item())
        if self.scaler.is_enabled() or du.all_ranks_true(finite, self.device):
            return True
        terms = ", ".join(f"{k}={v.item():.6g}" for k, v in losses.items())
        return self._nonfinite(f"non-finite gradient norm {norm.item()} at iteration {self.iteration + 1} "
                               f"(loss {total.item():.6g}: {terms})")

    def _nonfinite(self, message: str) -> bool:
        """Apply train.on_nonfinite: raise, or count the skipped update and go on (returns False)."""
        if self.cfg.train.on_nonfinite == "error":
            raise FloatingPointError(message + "; the last checkpoint is from before this step "
                                     "(train.on_nonfinite=skip drops such steps instead)")
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped_steps += 1
        self._say(f"{message}; step skipped ({self.skipped_steps} so far)")
        return False

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
        start = self.clock()
        with preserved_rng(), torch.no_grad():
            metrics = self.evaluate_fn(self.model) or {}
        self.eval_seconds += self.clock() - start
        self.model.train()
        metrics = metrics if self.is_main else {}
        if self.is_main:
            record = {"type": "eval", "iter": self.iteration, "train_minutes": round(self._elapsed() / 60, 3)}
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
    def _state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "max_iters": self.max_iters,
            "schedule_fitted": self.schedule_fitted,
            "elapsed_s": self._elapsed(),
            "rng": du.all_gather_object(get_rng_state()),  # one entry per rank
            "config": config_to_dict(self.cfg),
            "best_metric": self.best_metric,
            "skipped_steps": self.skipped_steps,
            "world_size": self.world_size,
        }

    def _save(self, name: str) -> None:
        state = self._state()  # every rank takes part (RNG gather)
        if self.is_main:
            save_checkpoint(self.output_dir / name, state)
        self._last_save_iter = self.iteration

    def _resume(self) -> None:
        path = self.output_dir / "last.pt"
        if not path.is_file():
            self._say(f"resume: no checkpoint at {path}, starting from scratch")
            return
        state = load_checkpoint(path, map_location="cpu")
        self._check_resume_config(path, state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration, self.best_metric = state["iteration"], state.get("best_metric")
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self._restore_schedule(state)
        self._restore_rng(state.get("rng"))
        self._say(f"resumed from {path} at iteration {self.iteration}/{self.max_iters}")

    def _check_resume_config(self, path: Path, state: dict[str, Any]) -> None:
        """Refuse what would silently change the run, warn about what is a deliberate change."""
        saved = state.get("config") or {}
        refused, warned = [], []
        for section, key, problem in RESUME_CHECKS:
            old, new = saved.get(section, {}).get(key), getattr(getattr(self.cfg, section), key)
            if saved and old != new:
                (refused if problem == "refuse" else warned).append(f"{section}.{key} {old} -> {new}")
        old_world = state.get("world_size", len(state.get("rng") or [None]))
        if old_world != self.world_size:
            warned.append(f"world size {old_world} -> {self.world_size} (same global batch, "
                          f"per-rank data order and RNG streams change)")
        if refused:
            raise ResumeError(f"cannot resume from {path}: {'; '.join(refused)}. These change what an "
                              f"iteration means; start a new output_dir (model.weights={path}) instead.")
        for change in warned:
            self._say(f"WARNING resume from {path}: {change}")

    def _check_ranks_agree(self) -> None:
        iterations = du.all_gather_object(self.iteration)
        if len(set(iterations)) > 1:
            raise RuntimeError(f"ranks start at different iterations {iterations}: every node must "
                               f"read the same {self.output_dir / 'last.pt'} (use a shared filesystem)")

    def _restore_schedule(self, state: dict[str, Any]) -> None:
        """A schedule fitted to a time budget is kept as saved; otherwise the config is the
        truth (so a run can be extended by raising train.max_iters and resuming)."""
        self.schedule_fitted = bool(state.get("schedule_fitted", False))
        if self.schedule_fitted:
            self.max_iters = int(state["max_iters"])
        else:
            base = self.cfg.train.max_iters
            refit_scheduler(self.scheduler, self.cfg.solver, base, base)

    def _restore_rng(self, states: list[dict] | None) -> None:
        if states and len(states) == self.world_size:
            set_rng_state(states[self.rank])
        else:
            self._say("resume: RNG states not restored (saved with another world size); using fresh seeds")

    # ---------------------------------------------------------------- time budget
    def _elapsed(self) -> float:
        """Training seconds of the whole job (earlier resumed-from runs included), evaluations left out."""
        return self.elapsed_before + (self._train_clock() - self.start_time)

    def _train_clock(self) -> float:
        return self.clock() - self.eval_seconds

    def _out_of_time(self) -> bool:
        budget = self.cfg.train.max_minutes
        if budget is None:
            return False
        out = self._elapsed() >= budget * 60.0
        stop = du.any_rank_true(out, self.device)  # all ranks must stop at the same step
        if stop:
            self._say(f"time budget of {budget} min reached at iteration {self.iteration}")
        return stop

    def _fit_schedule_to_budget(self) -> None:
        """Time FIT_WINDOW iterations after FIT_SKIP, then shorten the run (and its lr schedule)
        to what fits in the remaining budget; refit when each of REFIT_FRACTIONS of the budget is
        expected to be spent, from the iterations since the previous fit. Refits happen at
        iterations rank 0 chose and broadcast, so every rank takes part. Done within one job: a
        resumed run keeps the schedule it saved."""
        budget = self.cfg.train.max_minutes
        if budget is None:
            return
        done = self.iteration - self.start_iter
        if done == self.FIT_SKIP and not self.schedule_fitted:
            self._fit_mark = (self.iteration, self._train_clock())
        first = not self.schedule_fitted and self._fit_mark is not None and done - self.FIT_SKIP == self.FIT_WINDOW
        if not (first or self.iteration == self._next_refit):
            return
        mark_iter, mark_time = self._fit_mark
        sec_per_iter = (self._train_clock() - mark_time) / (self.iteration - mark_iter)
        self._fit_mark = (self.iteration, self._train_clock())
        budget_s, elapsed = budget * 60.0, self._elapsed()
        fitted = iters_in_budget(sec_per_iter, elapsed, budget_s, self.iteration, self.cfg.train.max_iters)
        next_refit = -1
        if self._refits_left:
            wait = max(1, int((self._refits_left.pop(0) * budget_s - elapsed) / max(sec_per_iter, 1e-9)))
            next_refit = self.iteration + wait
        fitted, self._next_refit = du.broadcast_object((fitted, next_refit))
        self._apply_fit(fitted, sec_per_iter)

    def _apply_fit(self, fitted: int, sec_per_iter: float) -> None:
        before = self.max_iters
        self.max_iters, self.schedule_fitted = fitted, True
        refit_scheduler(self.scheduler, self.cfg.solver, fitted, self.cfg.train.max_iters)
        self.progress.set_total(fitted)
        self._say(f"time budget {self.cfg.train.max_minutes} min at {sec_per_iter:.3f} s/it "
                  f"(iteration {self.iteration}): max_iters {before} -> {fitted}")

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
