"""ASG's learning-rate policy: its network, the decision windows, the reward, REINFORCE, and train-policy's CLI."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
import torch
import yaml

from generalization.asg.controller import LRController
from generalization.asg.meta import ReturnBaseline, discounted_returns, reinforce_loss
from generalization.asg.policy import ACTIONS, SIGNALS, LRPolicy, load_policy
from syn2real.cli import main

REPO = Path(__file__).parents[2]


def _observe(controller: LRController, objective: float, steps: int = 1) -> None:
    for _ in range(steps):
        controller.observe(
            task_loss=objective, proxy_loss=0.0, objective=objective, progress=0.5, head=torch.ones(2, 2)
        )


def test_policy_starts_near_uniform_over_the_eleven_multipliers() -> None:
    policy = LRPolicy(groups=["a", "b", "c"])
    logits, state = policy(torch.tensor([2.3, 0.1, 0.5, 0.0, 0.05]), torch.ones(3), policy.initial_state())
    assert logits.shape == (3, len(ACTIONS)) and state.shape == (2, len(SIGNALS), 20)
    assert torch.allclose(logits.softmax(-1), torch.full_like(logits, 1 / 11), atol=1e-3)
    assert ACTIONS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class RecordingPolicy(LRPolicy):
    """A policy that keeps the inputs of every decision."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.inputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, signals: torch.Tensor, ratios: torch.Tensor, state: torch.Tensor):  # type: ignore[no-untyped-def]
        self.inputs.append((signals.clone(), ratios.clone()))
        return super().forward(signals, ratios, state)


def test_windows_grow_with_the_steps_done_and_decisions_see_window_means() -> None:
    policy = RecordingPolicy(groups=["a"])
    controller = LRController(policy, min_window=10)
    decisions, step = [], 0
    while step < 700:
        if controller.due(step):
            decisions.append(controller.decide(step).step)
        controller.observe(
            task_loss=float(step), proxy_loss=1.0, objective=float(step), progress=step / 700, head=torch.eye(2)
        )
        step += 1
    assert decisions[:3] == [10, 20, 30]  # the minimum window first
    gaps = [b - a for a, b in itertools.pairwise(decisions)]
    assert all(g == max(10, d // 20) for g, d in zip(gaps, decisions, strict=False))  # then steps_done // 20
    seen = [signals for signals, _ in policy.inputs]
    assert seen[1][0].item() == pytest.approx(sum(range(10, 20)) / 10)  # mean task loss of the window
    assert seen[1][1].item() == pytest.approx(1.0)
    assert seen[1][3].item() == pytest.approx(0.5) and seen[1][4].item() == pytest.approx(float(torch.eye(2).std()))


def test_decision_reports_the_policy_expected_multiplier() -> None:
    policy = LRPolicy(groups=["a", "b"])
    with torch.no_grad():  # head a: 0.2 with probability 1/4, 1.0 with 3/4; head b: uniform
        probs = torch.full((len(ACTIONS),), 1e-12)
        probs[2], probs[10] = 0.25, 0.75
        policy.heads[0].weight.zero_()
        policy.heads[0].bias.copy_(probs.log())
        policy.heads[1].weight.zero_()
        policy.heads[1].bias.zero_()
    controller = LRController(policy, min_window=1)
    _observe(controller, 1.0)
    decision = controller.decide(1)
    assert decision.expected == pytest.approx([0.25 * 0.2 + 0.75 * 1.0, 0.5], abs=1e-6)
    assert decision.multipliers[0] in (pytest.approx(0.2), pytest.approx(1.0))  # sampled, not the expectation


def test_reward_is_minus_the_mean_objective_of_the_window() -> None:
    controller = LRController(LRPolicy(groups=["a"]), min_window=2)
    for value in (1.0, 2.0, 4.0):
        _observe(controller, value)
    assert controller.window_reward() == pytest.approx(-7 / 3)
    controller.decide(3)
    _observe(controller, 0.5)
    assert controller.window_reward() == pytest.approx(-0.5)  # the window restarted


def test_deployed_controller_keeps_no_graph_and_freezes_the_policy() -> None:
    policy = LRPolicy(groups=["a", "b"])
    controller = LRController(policy, min_window=1)
    _observe(controller, 1.0)
    decision = controller.decide(1)
    assert not decision.log_prob.requires_grad and not any(p.requires_grad for p in policy.parameters())
    learner = LRController(LRPolicy(groups=["a", "b"]), min_window=1, learn=True)
    _observe(learner, 1.0)
    assert learner.decide(1).log_prob.requires_grad


def test_advantages_subtract_a_per_decision_baseline() -> None:
    baseline = ReturnBaseline(momentum=0.5)
    assert torch.equal(baseline.advantages(torch.tensor([1.0, 2.0])), torch.zeros(2))  # the first episode sets b
    adv = baseline.advantages(torch.tensor([3.0, 2.0]))  # b = [1, 2]: raw advantages [2, 0]
    raw = torch.tensor([2.0, 0.0])
    assert torch.allclose(adv, raw / raw.std())
    assert torch.allclose(baseline.values, torch.tensor([2.0, 2.0]))
    assert discounted_returns([-1.0, -1.0], 0.0) == [-1.0, -1.0]


def test_reinforce_learns_the_rewarded_multiplier() -> None:
    torch.manual_seed(0)
    policy = LRPolicy(groups=["only"])
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5, momentum=0.9)
    baseline = ReturnBaseline()

    def expected_multiplier() -> float:
        logits, _ = policy(torch.zeros(len(SIGNALS)), torch.ones(1), policy.initial_state())
        return float((logits.softmax(-1) * policy.actions).sum())

    start = expected_multiplier()
    for _ in range(60):
        controller = LRController(policy, min_window=1, learn=True)
        log_probs, rewards = [], []
        for step in range(1, 4):
            _observe(controller, 0.0)
            decision = controller.decide(step)
            log_probs.append(decision.log_prob)
            rewards.append(decision.multipliers[0])  # the environment pays for high rates
        loss = reinforce_loss(log_probs, baseline.advantages(torch.tensor(discounted_returns(rewards, 0.0))))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert start == pytest.approx(0.5, abs=0.01)
    assert expected_multiplier() > 0.7


@pytest.mark.timeout(300)
def test_train_policy_command_writes_a_policy_asg_then_deploys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load((REPO / "configs" / "smoke" / "asg.yaml").read_text())
    config["trainer"] = str(REPO / "configs" / "trainer" / "smoke.yaml")
    path = tmp_path / "asg.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "policy"
    args = ["--config", str(path), "--out", str(out), "--episodes", "2", "--episode-steps", "12", "--min-window", "4"]
    args += ["--run-steps", "40", "--data.init_args.batch_size=2"]  # an override passes through to the config
    with pytest.raises(SystemExit) as done:
        main(["train-policy", *args])
    assert done.value.code == 0
    for name in ("policy.pt", "episodes.csv", "decisions.csv", "decisions.png", "meta_training.png"):
        assert (out / name).is_file(), name
    decisions = list(csv.DictReader((out / "decisions.csv").read_text().splitlines()))
    assert len(decisions) == 2 * 2 * 9  # episodes × decisions × groups
    assert all(0.0 <= float(r["expected"]) <= 1.0 for r in decisions)
    assert {round(float(r["expected"]), 2) for r in decisions if r["episode"] == "0"} == {0.5}  # the uniform start
    rows = list(csv.DictReader((out / "episodes.csv").read_text().splitlines()))
    assert [int(r["decisions"]) for r in rows] == [2, 2]  # decisions at steps 4 and 8 of 12
    said = " ".join(capsys.readouterr().err.split())  # one line per episode, for logs without a progress bar
    assert "episode 1/2: mean objective" in said and "episode 2/2: mean objective" in said
    groups = ["conv_stem", *(f"blocks.{i}" for i in range(7)), "task_head"]
    load_policy(out / "policy.pt", groups=groups, backbone="efficientnet_lite0")
    metadata = torch.load(out / "policy.pt", weights_only=True)["metadata"]
    assert metadata["run_steps"] == 40 and metadata["episode_steps"] == 12
    with pytest.raises(SystemExit) as again:  # an earlier policy is not overwritten silently
        main(["train-policy", *args])
    assert again.value.code == 2
    config["model"]["init_args"].update(policy=str(out / "policy.pt"), policy_min_window=1)
    path.write_text(yaml.safe_dump(config))
    main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path}"])


@pytest.mark.timeout(300)
def test_zero_episodes_write_the_policy_meta_training_starts_from(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "configs" / "smoke" / "asg.yaml").read_text())
    config["trainer"] = str(REPO / "configs" / "trainer" / "smoke.yaml")
    path = tmp_path / "asg.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["--config", str(path), "--episode-steps", "12", "--min-window", "4", "--run-steps", "40"]
    for out, episodes in (("untrained", "0"), ("one", "1"), ("two", "2")):
        with pytest.raises(SystemExit) as done:
            main(["train-policy", *args, "--out", str(tmp_path / out), "--episodes", episodes, "--meta-lr", "1.0"])
        assert done.value.code == 0
    untrained, one, two = (
        torch.load(tmp_path / o / "policy.pt", weights_only=True) for o in ("untrained", "one", "two")
    )
    assert not (tmp_path / "untrained" / "episodes.csv").exists()  # no episode ran
    assert untrained["metadata"]["episodes"] == 0
    same = lambda a, b: all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])  # noqa: E731
    assert same(untrained, one)  # the first episode only sets the return baseline (advantage 0): the same start
    assert not same(untrained, two)  # the second one moves it
    with pytest.raises(SystemExit) as again:  # overwriting a trained run leaves no record of its episodes behind
        main(["train-policy", *args, "--out", str(tmp_path / "two"), "--episodes", "0", "--overwrite"])
    assert again.value.code == 0
    assert same(untrained, torch.load(tmp_path / "two" / "policy.pt", weights_only=True))
    records = ("episodes.csv", "decisions.csv", "decisions.png", "meta_training.png")
    assert not any((tmp_path / "two" / n).exists() for n in records)


def test_train_policy_refuses_a_config_of_another_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["train-policy", "--config", str(REPO / "configs/smoke/task.yaml"), "--out", str(tmp_path)])
    assert done.value.code == 2
    assert "train-policy needs an ASG experiment config" in " ".join(capsys.readouterr().err.split())


def test_the_policy_sees_each_groups_rate_over_its_base() -> None:
    policy = RecordingPolicy(groups=["a", "b"])
    controller = LRController(policy, min_window=1)
    _observe(controller, 1.0)
    chosen = controller.decide(1, schedule_factor=0.5).multipliers
    _observe(controller, 1.0)
    controller.decide(2, schedule_factor=0.25)
    seen = [ratios for _, ratios in policy.inputs]
    assert torch.allclose(seen[0], torch.tensor([0.5, 0.5]))  # multipliers start at 1
    assert torch.allclose(seen[1], 0.25 * torch.tensor(chosen))


@pytest.mark.parametrize("name", ["asg_lite0_digits.pt", "asg_lite0_digits_40ep.pt"])
def test_the_shipped_digits_policies_fit_the_digits_network(name: str) -> None:
    groups = ["conv_stem", *(f"blocks.{i}" for i in range(7)), "task_head"]
    policy = load_policy(REPO / "configs/policies" / name, groups=groups, backbone="efficientnet_lite0")
    assert policy.groups == groups and sum(p.numel() for p in policy.parameters()) < 50_000  # small enough to ship
    metadata = torch.load(REPO / "configs/policies" / name, weights_only=True)["metadata"]
    assert metadata["episodes"] == (40 if "40ep" in name else 10)  # what the README says each was trained for
