"""The developer walk (`python -m npdecode.devtools.walk`) on the real stages."""

from npdecode.devtools.walk import walk


def test_the_fewshot_stage_reaches_the_core_in_one_hop_and_the_loop_through_the_task():
    w = walk("npdecode.stages.fewshot:main:params")
    assert w.order[0] == "npdecode.stages.fewshot:main"
    # one hop: the stage hands params to the few-shot core's entry, which runs the curve
    # (an Allen session); its only other function is the reaching sessions' branch
    in_stage = [f for f in w.order if f.startswith("npdecode.stages.fewshot:")]
    assert in_stage == ["npdecode.stages.fewshot:main", "npdecode.stages.fewshot:reach_fewshot"]
    assert "npdecode.decode.fewshot:session_curve" in w.order
    reached = set(w.order)
    assert {
        "npdecode.decode.fewshot:fit_on_shots",
        "npdecode.decode.training:fit_options",
    } <= reached
    # params never climbs back into a module still on its call stack
    assert w.climbs == []
    # no stage reaches into another stage
    stages = {f.split(":")[0] for f in w.order if f.startswith("npdecode.stages.")}
    assert stages == {"npdecode.stages.fewshot"}
