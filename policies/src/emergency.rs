//! Declared emergencies (平疫结合): while one is active for an area, the policy lines with
//! emergency field `emergency` apply to rows of that area. It ends at `until` by itself, or
//! earlier when a security officer ends it.

use chrono::{DateTime, Utc};

/// One declared emergency, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emergency {
    pub id: i64,
    /// The admin code the emergency covers (every row whose area_code starts with it).
    pub area: String,
    pub reason: String,
    pub declared_by: String,
    pub declared_at: DateTime<Utc>,
    /// Expiry: the emergency ends by itself at this instant.
    pub until: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

/// How an emergency relates to a principal's jurisdiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The emergency's area contains the whole jurisdiction.
    Covering,
    /// The emergency's area lies strictly inside the jurisdiction.
    Inside,
}

impl Emergency {
    /// Active at `now`: not ended and not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.ended_at.is_none() && now < self.until
    }

    /// How this emergency reaches the jurisdiction `area`; `None` when they are unrelated.
    pub(crate) fn reach(&self, area: &str) -> Option<Reach> {
        if area.starts_with(&self.area) {
            Some(Reach::Covering)
        } else if self.area.starts_with(area) {
            Some(Reach::Inside)
        } else {
            None
        }
    }
}
