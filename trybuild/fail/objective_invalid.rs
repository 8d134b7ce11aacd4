use observe::slo::Objective;

// A target of 100 % leaves no budget: a compile error where the objective is defined.
const PERFECT: Objective = Objective::new("perfect").success_rate(100.0);

// An objective without any target.
const NOTHING: Objective = Objective::new("nothing");

#[observe::instrumented(objective = NOTHING)]
fn nothing() {}

#[observe::instrumented(metrics = false, objective = PERFECT)]
fn untracked() {}

fn main() {
    nothing();
    untracked();
}
