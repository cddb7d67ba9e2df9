//! The lifecycle of an instance (saas.md §9), as an explicit state machine.
//!
//! ```text
//!              provisioned               freeze
//! Provisioning ───────────▶ Active ◀──────────────▶ Frozen
//!      │  provision failed    │         unfreeze       │
//!      ▼                      │ release                │ release
//!    Failed ──── release ────▶ Released ◀──────────────┘
//! ```
//!
//! Renewals and upgrades change the expiry or the specification but never the state. Repeating
//! the current state (freeze a frozen instance, release a released one) succeeds and changes
//! nothing, as KooGallery's idempotency rules require (saas.md §7).

use std::fmt;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Created; the provisioning job has not finished. `queryInstance` answers `000004`.
    Provisioning,
    /// Provisioned and usable.
    Active,
    /// Frozen after expiry or a violation; data is kept.
    Frozen,
    /// Deleted. Terminal.
    Released,
    /// Provisioning failed permanently; the order fails and KooGallery refunds it.
    Failed,
}

impl State {
    pub const ALL: [State; 5] = [
        Self::Provisioning,
        Self::Active,
        Self::Frozen,
        Self::Released,
        Self::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Frozen => "frozen",
            Self::Released => "released",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happens to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The provisioning job finished.
    Provisioned,
    /// The provisioning job gave up.
    ProvisionFailed,
    /// `updateInstanceStatus FREEZE`, V1 `expireInstance`, V1 `instanceStatus FREEZE`.
    Freeze,
    /// `updateInstanceStatus UNFREEZE`, V1 `instanceStatus NORMAL`.
    Unfreeze,
    /// `refreshInstance` (any scene), V1 `refreshInstance`: a new absolute expiry.
    Renew,
    /// `upgradeInstance`, V1 `upgrade`: a new specification or quantity.
    Upgrade,
    /// `releaseInstance`.
    Release,
}

impl Command {
    pub const ALL: [Command; 7] = [
        Self::Provisioned,
        Self::ProvisionFailed,
        Self::Freeze,
        Self::Unfreeze,
        Self::Renew,
        Self::Upgrade,
        Self::Release,
    ];

    /// The event kind recorded for this command.
    pub const fn event_kind(self) -> &'static str {
        match self {
            Self::Provisioned => "provisioned",
            Self::ProvisionFailed => "provision_failed",
            Self::Freeze => "frozen",
            Self::Unfreeze => "unfrozen",
            Self::Renew => "renewed",
            Self::Upgrade => "upgraded",
            Self::Release => "released",
        }
    }
}

/// Why a command does not apply in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The instance is released (or failed): it no longer exists for KooGallery (`000003`).
    #[error("instance is {0}")]
    Gone(State),
    /// The instance is still being provisioned; KooGallery should retry (`000005`).
    #[error("instance is still being provisioned")]
    NotReady,
    /// The command contradicts the state (e.g. a provisioning result for a finished instance).
    #[error("{command:?} does not apply to a {state} instance")]
    Conflict { state: State, command: Command },
}

/// The result of a command that applies: the new state, and whether anything changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// False when the command repeats the current state (nothing to record or do).
    pub changed: bool,
}

/// The transition function.
pub fn apply(state: State, command: Command) -> Result<Transition, Refusal> {
    use Command as C;
    use State as S;
    let to = match (state, command) {
        (S::Released, C::Release) => {
            return Ok(Transition {
                from: state,
                to: state,
                changed: false,
            });
        }
        (S::Released | S::Failed, C::Freeze | C::Unfreeze | C::Renew | C::Upgrade) => {
            return Err(Refusal::Gone(state));
        }
        (S::Provisioning, C::Provisioned) => S::Active,
        (S::Provisioning, C::ProvisionFailed) => S::Failed,
        (S::Provisioning, C::Freeze | C::Unfreeze) => return Err(Refusal::NotReady),
        // A renewal or an upgrade of an instance still provisioning: recorded, state kept.
        (S::Provisioning, C::Renew | C::Upgrade) => S::Provisioning,
        (S::Active, C::Freeze) | (S::Frozen, C::Freeze) => S::Frozen,
        (S::Frozen, C::Unfreeze) | (S::Active, C::Unfreeze) => S::Active,
        (S::Active | S::Frozen, C::Renew | C::Upgrade) => state,
        (S::Provisioning | S::Active | S::Frozen | S::Failed, C::Release) => S::Released,
        (S::Active, C::Provisioned) => {
            return Ok(Transition {
                from: state,
                to: state,
                changed: false,
            });
        }
        (_, C::Provisioned | C::ProvisionFailed) => {
            return Err(Refusal::Conflict { state, command });
        }
    };
    // Renew and Upgrade change data, not state: they always count as a change to record.
    let changed = to != state || matches!(command, C::Renew | C::Upgrade);
    Ok(Transition {
        from: state,
        to,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lifecycle_of_a_period_product() {
        let mut s = State::Provisioning;
        for (c, expected) in [
            (Command::Provisioned, State::Active),
            (Command::Renew, State::Active),
            (Command::Freeze, State::Frozen),
            (Command::Freeze, State::Frozen),
            (Command::Renew, State::Frozen),
            (Command::Unfreeze, State::Active),
            (Command::Upgrade, State::Active),
            (Command::Release, State::Released),
            (Command::Release, State::Released),
        ] {
            s = apply(s, c).unwrap().to;
            assert_eq!(s, expected, "after {c:?}");
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(
            apply(State::Released, Command::Renew),
            Err(Refusal::Gone(State::Released))
        );
        assert_eq!(
            apply(State::Failed, Command::Freeze),
            Err(Refusal::Gone(State::Failed))
        );
        assert_eq!(
            apply(State::Provisioning, Command::Freeze),
            Err(Refusal::NotReady)
        );
        assert!(matches!(
            apply(State::Frozen, Command::Provisioned),
            Err(Refusal::Conflict { .. })
        ));
        assert!(!apply(State::Frozen, Command::Freeze).unwrap().changed);
        assert!(!apply(State::Released, Command::Release).unwrap().changed);
        assert!(!apply(State::Active, Command::Provisioned).unwrap().changed);
        assert!(apply(State::Active, Command::Renew).unwrap().changed);
    }

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("nope"), None);
    }

    fn command() -> impl Strategy<Value = Command> {
        prop::sample::select(Command::ALL.to_vec())
    }

    proptest! {
        /// Any sequence of commands: released is absorbing; a change always moves along an
        /// edge of the diagram; an unchanged transition keeps the state; nothing leaves
        /// Released or Failed except release.
        #[test]
        fn invariants_hold_for_any_sequence(commands in prop::collection::vec(command(), 0..40)) {
            let mut s = State::Provisioning;
            let mut released = false;
            for c in commands {
                match apply(s, c) {
                    Ok(t) => {
                        prop_assert_eq!(t.from, s);
                        if !t.changed { prop_assert_eq!(t.to, s); }
                        if released { prop_assert_eq!(t.to, State::Released); prop_assert!(!t.changed); }
                        if s == State::Failed { prop_assert_eq!(t.to, State::Released); }
                        let edge = matches!((t.from, t.to),
                            (a, b) if a == b
                            || (a, b) == (State::Provisioning, State::Active)
                            || (a, b) == (State::Provisioning, State::Failed)
                            || (a, b) == (State::Active, State::Frozen)
                            || (a, b) == (State::Frozen, State::Active)
                            || b == State::Released);
                        prop_assert!(edge, "{:?} -> {:?}", t.from, t.to);
                        s = t.to;
                        released |= s == State::Released;
                    }
                    Err(Refusal::Gone(g)) => { prop_assert_eq!(g, s); prop_assert!(matches!(s, State::Released | State::Failed)); }
                    Err(Refusal::NotReady) => prop_assert_eq!(s, State::Provisioning),
                    Err(Refusal::Conflict { state, .. }) => prop_assert_eq!(state, s),
                }
            }
        }
    }
}
