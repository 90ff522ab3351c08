//! The asset register: every boiler the council tracks, by asset id, with its home, what it is,
//! which meters it has and the hub that reads it; and the check that a sample comes from that
//! hub.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use proto::DeviceId;
use serde::{Deserialize, Serialize};

use super::efficiency::Meters;
use super::waste::BoilerFacts;

/// The longest asset id.
pub const MAX_ASSET_ID_LEN: usize = 64;

/// One boiler on the register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// The council's asset id, as hubs put it in their samples.
    pub asset: String,
    /// The home's Unique Property Reference Number.
    pub uprn: u64,
    /// The home's postal address, for staff (never logged).
    pub address: String,
    /// The boiler's make.
    pub make: String,
    /// The boiler's model.
    pub model: String,
    /// Its rated heat output, kW.
    pub rated_output_kw: f64,
    /// When it was installed, if the register knows.
    pub installed: Option<NaiveDate>,
    /// Its gas and heat meters.
    pub meters: Meters,
    /// The hub that reads it.
    pub hub: DeviceId,
}

impl Asset {
    /// What waste valuation needs to know of it.
    pub fn facts(&self) -> BoilerFacts {
        BoilerFacts {
            meters: self.meters,
            rated_output_kw: self.rated_output_kw,
        }
    }
}

/// Whether an asset id is one the register can hold: 1 to 64 letters, digits, `-`, `_`, `.` or
/// `/`.
pub fn valid_asset_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ASSET_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Where a sample stands against the register.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceCheck<'a> {
    /// The asset is registered to the hub that sent the sample.
    Registered(&'a Asset),
    /// No such asset on the register: flag the sample.
    UnknownAsset,
    /// The asset is registered to another hub: flag the sample (a hub moved without the
    /// register being told, or a misconfigured one reporting for the wrong boiler).
    WrongHub {
        /// The asset.
        asset: &'a Asset,
        /// The hub the register names.
        expected: &'a DeviceId,
    },
}

impl SourceCheck<'_> {
    /// Whether the sample should be flagged.
    pub fn is_flagged(&self) -> bool {
        !matches!(self, SourceCheck::Registered(_))
    }

    /// Why it is flagged, for staff; `None` when it is not.
    pub fn reason(&self, hub: &DeviceId) -> Option<String> {
        match self {
            SourceCheck::Registered(_) => None,
            SourceCheck::UnknownAsset => Some("the asset is not on the register".to_owned()),
            SourceCheck::WrongHub { asset, expected } => Some(format!(
                "asset {} is registered to hub {}, not {}",
                asset.asset,
                expected.as_str(),
                hub.as_str()
            )),
        }
    }
}

/// The register: assets by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Asset>", into = "Vec<Asset>")]
pub struct AssetRegister {
    /// Ordered so that listings and the persisted form are stable.
    by_asset: BTreeMap<String, Asset>,
}

impl AssetRegister {
    /// An empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an asset, or replaces the one with its id; returns the replaced one.
    pub fn insert(&mut self, asset: Asset) -> Option<Asset> {
        self.by_asset.insert(asset.asset.clone(), asset)
    }

    /// Removes an asset; returns it if it was there.
    pub fn remove(&mut self, asset: &str) -> Option<Asset> {
        self.by_asset.remove(asset)
    }

    /// The asset with this id.
    pub fn get(&self, asset: &str) -> Option<&Asset> {
        self.by_asset.get(asset)
    }

    /// How many assets the register holds.
    pub fn len(&self) -> usize {
        self.by_asset.len()
    }

    /// Whether the register is empty.
    pub fn is_empty(&self) -> bool {
        self.by_asset.is_empty()
    }

    /// Every asset, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Asset> {
        self.by_asset.values()
    }

    /// The assets a hub is registered to read.
    pub fn read_by(&self, hub: &DeviceId) -> impl Iterator<Item = &Asset> {
        let hub = hub.clone();
        self.iter().filter(move |asset| asset.hub == hub)
    }

    /// Where a sample for `asset` sent by `hub` stands.
    pub fn check_source(&self, asset: &str, hub: &DeviceId) -> SourceCheck<'_> {
        match self.get(asset) {
            None => SourceCheck::UnknownAsset,
            Some(registered) if registered.hub == *hub => SourceCheck::Registered(registered),
            Some(registered) => SourceCheck::WrongHub {
                asset: registered,
                expected: &registered.hub,
            },
        }
    }
}

impl From<Vec<Asset>> for AssetRegister {
    fn from(assets: Vec<Asset>) -> Self {
        let mut register = Self::new();
        for asset in assets {
            register.insert(asset);
        }
        register
    }
}

impl From<AssetRegister> for Vec<Asset> {
    fn from(register: AssetRegister) -> Self {
        register.by_asset.into_values().collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn asset(id: &str, hub: &str) -> Asset {
        Asset {
            asset: id.to_owned(),
            uprn: 100021445102,
            address: "4 Swakeleys Road, Ickenham".to_owned(),
            make: "Worcester Bosch".to_owned(),
            model: "Greenstar 30i".to_owned(),
            rated_output_kw: 30.0,
            installed: NaiveDate::from_ymd_opt(2019, 3, 14),
            meters: Meters {
                gas: true,
                heat: false,
            },
            hub: DeviceId::new(hub).unwrap(),
        }
    }

    #[test]
    fn a_sample_from_another_hub_is_flagged() {
        let register = AssetRegister::from(vec![asset("B-1", "hub-1"), asset("B-2", "hub-2")]);
        let hub_1 = DeviceId::new("hub-1").unwrap();
        assert!(matches!(
            register.check_source("B-1", &hub_1),
            SourceCheck::Registered(a) if a.asset == "B-1"
        ));
        let wrong = register.check_source("B-2", &hub_1);
        assert!(wrong.is_flagged());
        assert_eq!(
            wrong.reason(&hub_1).as_deref(),
            Some("asset B-2 is registered to hub hub-2, not hub-1")
        );
        let unknown = register.check_source("B-9", &hub_1);
        assert_eq!(unknown, SourceCheck::UnknownAsset);
        assert!(unknown.is_flagged());
        assert_eq!(register.read_by(&hub_1).count(), 1);
    }

    #[test]
    fn replacing_and_persisting_keep_one_asset_per_id() {
        let mut register = AssetRegister::new();
        register.insert(asset("B-1", "hub-1"));
        let old = register.insert(asset("B-1", "hub-7")).unwrap();
        assert_eq!(old.hub.as_str(), "hub-1");
        assert_eq!(register.len(), 1);
        let json = serde_json::to_string(&register).unwrap();
        let back: AssetRegister = serde_json::from_str(&json).unwrap();
        assert_eq!(back, register);
        assert_eq!(back.get("B-1").unwrap().facts().rated_output_kw, 30.0);
        assert!(valid_asset_id("HIL/B-0042.1"));
        assert!(!valid_asset_id("B 1"));
        assert!(!valid_asset_id(&"x".repeat(65)));
    }
}
