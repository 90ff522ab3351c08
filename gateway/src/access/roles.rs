//! What each staff role may do. Roles are not a ladder: a waste supervisor has no business with
//! tenants' boilers and an asset manager none with residents' reports, so each role is granted
//! the [`Action`]s its work needs, and every staff route names the one action it performs
//! ([`crate::http::guard`]). The table is [`Role::may`]; docs/API.md shows it.

use serde::{Deserialize, Serialize};

/// A member of staff's role, carried by their bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads what holds no personal data: rounds' progress, reports without residents' details,
    /// devices. For a council's dashboards and wall screens.
    Viewer,
    /// Reads tenants' boilers (register, telemetry, efficiency, the estate, alerts) and
    /// acknowledges their alerts. Nothing of residents' reports.
    AssetManager,
    /// Reads and acts on residents' missed-bin reports, with their contact details. Nothing of
    /// boilers.
    WasteSupervisor,
    /// Everything, including the registers' imports and the quarantine.
    Admin,
}

impl Role {
    /// Every role, in the order the table lists them.
    pub const ALL: [Role; 4] = [
        Role::Viewer,
        Role::AssetManager,
        Role::WasteSupervisor,
        Role::Admin,
    ];

    /// The role's name, as the CLI and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::AssetManager => "asset_manager",
            Role::WasteSupervisor => "waste_supervisor",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do `action`. The whole role table: a new action must be placed here
    /// for every role, since the match is exhaustive.
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Viewer => matches!(action, ReadDevices | ReadRounds),
            Role::WasteSupervisor => matches!(
                action,
                ReadDevices | ReadRounds | ReadResidents | ActOnReports
            ),
            Role::AssetManager => matches!(action, ReadDevices | ReadBoilers | ActOnBoilers),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("{text:?} is not a role; one of {}", names.join(", "))
            })
    }
}

/// What a staff route does, as far as who may do it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The devices and their state (no personal data).
    ReadDevices,
    /// Rounds' progress and unmatched confirmations (as evidence: vehicle, time, outcome, never
    /// a position), reports without residents' details and changes to them.
    ReadRounds,
    /// Residents' contact details and comments on their reports: personal data.
    ReadResidents,
    /// File and place residents' reports.
    ActOnReports,
    /// Tenants' boilers: the asset register, telemetry, efficiency, the estate, alerts, and
    /// their repair jobs.
    ReadBoilers,
    /// Acknowledge boilers' alerts; raise and cancel repair jobs.
    ActOnBoilers,
    /// Import the registers; read the quarantine (raw prefixes of refused messages).
    Administer,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 7] = [
        Action::ReadDevices,
        Action::ReadRounds,
        Action::ReadResidents,
        Action::ActOnReports,
        Action::ReadBoilers,
        Action::ActOnBoilers,
        Action::Administer,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_granted_what_their_work_needs_and_no_more() {
        use Action::*;
        let granted = |role: Role| -> Vec<Action> {
            Action::ALL.into_iter().filter(|a| role.may(*a)).collect()
        };
        assert_eq!(granted(Role::Viewer), [ReadDevices, ReadRounds]);
        assert_eq!(
            granted(Role::WasteSupervisor),
            [ReadDevices, ReadRounds, ReadResidents, ActOnReports]
        );
        assert_eq!(
            granted(Role::AssetManager),
            [ReadDevices, ReadBoilers, ActOnBoilers]
        );
        assert_eq!(granted(Role::Admin), Action::ALL);
    }

    #[test]
    fn roles_read_and_print_as_the_issue_names_them() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let json = serde_json::to_value(role).unwrap();
            assert_eq!(json, role.as_str());
        }
        assert!("supervisor".parse::<Role>().is_err());
    }
}
