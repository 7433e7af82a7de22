//! [`NoticeStore`] in shared SQL: notices, who each is for and who got it; residents'
//! satisfaction with their resolved alert.

use async_trait::async_trait;
use sqlx::Row as _;

use super::super::{Backend, Row};
use crate::domain::{AlertId, ClusterId, DeviceId, ZoneCode};
use crate::store::notices::{
    NewNotice, Notice, NoticeKind, NoticeReceipt, NoticeStore, NoticeView, Satisfaction,
    SatisfactionOutcome, SentNotice,
};
use crate::store::{corrupt, StoreError, StoreResult};

/// A notice's columns with its counts (`n` is the notice).
macro_rules! notice_select {
    ($where:literal) => {
        concat!(
            "SELECT n.id, n.zone, n.clusters, n.kind, n.title, n.body, n.author, n.created_at_ms, \
             (SELECT COUNT(DISTINCT u.household) FROM notice_units u WHERE u.notice = n.id) \
               AS households, \
             (SELECT COUNT(DISTINCT u.household) FROM notice_units u WHERE u.notice = n.id \
               AND u.delivered_at_ms IS NOT NULL) AS households_delivered, \
             (SELECT COUNT(*) FROM notice_units u WHERE u.notice = n.id) AS units, \
             (SELECT COUNT(*) FROM notice_units u WHERE u.notice = n.id \
               AND u.delivered_at_ms IS NOT NULL) AS units_delivered, \
             (SELECT COUNT(*) FROM notice_volunteers v WHERE v.notice = n.id) AS volunteers, \
             (SELECT COUNT(*) FROM notice_volunteers v WHERE v.notice = n.id \
               AND v.push = 'accepted') AS volunteers_reached \
             FROM notices n ",
            $where
        )
    };
}

fn notice_row(row: &Row) -> StoreResult<Notice> {
    let clusters: String = row.try_get("clusters")?;
    let kind: String = row.try_get("kind")?;
    Ok(Notice {
        id: row.try_get("id")?,
        zone: ZoneCode::parse(&row.try_get::<String, _>("zone")?)
            .map_err(|e| corrupt("zone", e))?,
        clusters: clusters
            .split(',')
            .filter(|c| !c.is_empty())
            .map(ClusterId::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt("cluster", e))?,
        kind: NoticeKind::parse(&kind).map_err(|e| corrupt("notice kind", e))?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        author: row.try_get("author")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn view_row(row: &Row) -> StoreResult<NoticeView> {
    Ok(NoticeView {
        notice: notice_row(row)?,
        households: row.try_get("households")?,
        households_delivered: row.try_get("households_delivered")?,
        units: row.try_get("units")?,
        units_delivered: row.try_get("units_delivered")?,
        volunteers: row.try_get("volunteers")?,
        volunteers_reached: row.try_get("volunteers_reached")?,
    })
}

#[async_trait]
impl NoticeStore for Backend {
    async fn create_notice(&self, new: &NewNotice, now_ms: i64) -> StoreResult<SentNotice> {
        let mut tx = self.begin_write().await?;
        let zone_known: Option<(String,)> =
            sqlx::query_as("SELECT code FROM zones WHERE code = $1")
                .bind(new.zone.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if zone_known.is_none() {
            return Err(StoreError::NotFound(format!("zone {}", new.zone)));
        }
        let clusters: Vec<ClusterId> = if new.clusters.is_empty() {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT id FROM clusters WHERE zone = $1 ORDER BY id")
                    .bind(new.zone.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
            rows.into_iter()
                .map(|(c,)| ClusterId::parse(&c).map_err(|e| corrupt("cluster", e)))
                .collect::<StoreResult<_>>()?
        } else {
            for c in &new.clusters {
                let zone: Option<(String,)> =
                    sqlx::query_as("SELECT zone FROM clusters WHERE id = $1")
                        .bind(c.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if zone.as_ref().map(|(z,)| z.as_str()) != Some(new.zone.as_str()) {
                    return Err(StoreError::Invalid(format!(
                        "cluster {c} is not a cluster of zone {}",
                        new.zone
                    )));
                }
            }
            new.clusters.clone()
        };
        let named: Vec<&str> = new.clusters.iter().map(|c| c.as_str()).collect();
        let id: i64 = sqlx::query(
            "INSERT INTO notices (zone, clusters, kind, title, body, author, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.zone.as_str())
        .bind(named.join(","))
        .bind(new.kind.as_str())
        .bind(&new.title)
        .bind(&new.body)
        .bind(&new.author)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        for c in &clusters {
            sqlx::query(
                "INSERT INTO notice_units (notice, device, household) \
                 SELECT $1, d.id, d.household FROM devices d \
                 JOIN households h ON h.id = d.household \
                 WHERE h.cluster = $2 AND d.enabled = TRUE AND d.id NOT LIKE 'sia-%'",
                // (An alarm panel's device, `sia-…`, has no screen and never reports.)
            )
            .bind(id)
            .bind(c.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let volunteers: Vec<(String,)> = sqlx::query_as(
            "SELECT a.name FROM volunteers v JOIN accounts a ON a.id = v.account \
             JOIN account_zones z ON z.account = a.id \
             WHERE z.zone = $1 AND v.on_duty = TRUE AND a.disabled = FALSE ORDER BY a.id",
        )
        .bind(new.zone.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for (name,) in &volunteers {
            sqlx::query("INSERT INTO notice_volunteers (notice, volunteer) VALUES ($1, $2)")
                .bind(id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(SentNotice {
            notice: Notice {
                id,
                zone: new.zone.clone(),
                clusters: new.clusters.clone(),
                kind: new.kind,
                title: new.title.clone(),
                body: new.body.clone(),
                author: new.author.clone(),
                created_at_ms: now_ms,
            },
            clusters,
            volunteers: volunteers.into_iter().map(|(n,)| n).collect(),
        })
    }

    async fn notices(
        &self,
        zones: &[ZoneCode],
        window: &crate::store::ListWindow,
    ) -> StoreResult<Vec<NoticeView>> {
        if zones.is_empty() {
            return Ok(Vec::new());
        }
        let query = sqlx::query(concat!(
            notice_select!("WHERE n.zone "),
            in_list!("$1"),
            " AND ",
            in_window!("n.created_at_ms", "n.id", "$2", "$3", "$4", "$5"),
            " ORDER BY n.created_at_ms DESC, n.id DESC LIMIT $6"
        ))
        .bind(Backend::zone_list(zones)?);
        let rows = super::bind_window(query, window)
            .bind(i64::from(window.limit))
            .fetch_all(self.reads())
            .await?;
        rows.iter().map(view_row).collect()
    }

    async fn notice(&self, id: i64) -> StoreResult<Option<NoticeView>> {
        let row = sqlx::query(notice_select!("WHERE n.id = $1"))
            .bind(id)
            .fetch_optional(self.reads())
            .await?;
        row.as_ref().map(view_row).transpose()
    }

    async fn recent_notices(&self, limit: u32) -> StoreResult<Vec<Notice>> {
        let rows = sqlx::query(
            "SELECT n.id, n.zone, n.clusters, n.kind, n.title, n.body, n.author, n.created_at_ms \
             FROM notices n ORDER BY n.id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(notice_row).collect()
    }

    async fn notice_places(&self, id: i64) -> StoreResult<Vec<(f64, f64)>> {
        // The households of its unit rows (written with the notice), each once.
        Ok(sqlx::query_as(
            "SELECT h.lat, h.lon FROM households h WHERE h.id IN \
             (SELECT u.household FROM notice_units u WHERE u.notice = $1)",
        )
        .bind(id)
        .fetch_all(self.reads())
        .await?)
    }

    async fn notice_delivered(
        &self,
        id: i64,
        device: &DeviceId,
        now_ms: i64,
    ) -> StoreResult<NoticeReceipt> {
        let done = sqlx::query(
            "UPDATE notice_units SET delivered_at_ms = $1 \
             WHERE notice = $2 AND device = $3 AND delivered_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .bind(device.as_str())
        .execute(self.writes())
        .await?;
        if done.rows_affected() > 0 {
            return Ok(NoticeReceipt::First);
        }
        let known: Option<(i64,)> =
            sqlx::query_as("SELECT notice FROM notice_units WHERE notice = $1 AND device = $2")
                .bind(id)
                .bind(device.as_str())
                .fetch_optional(self.reads())
                .await?;
        Ok(if known.is_some() {
            NoticeReceipt::Again
        } else {
            NoticeReceipt::NotForIt
        })
    }

    async fn notice_push_outcome(
        &self,
        id: i64,
        volunteer: &str,
        outcome: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notice_volunteers SET push = $1, push_at_ms = $2 \
             WHERE notice = $3 AND volunteer = $4 \
             AND (push IS NULL OR push <> 'accepted')",
        )
        .bind(outcome)
        .bind(now_ms)
        .bind(id)
        .bind(volunteer)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    async fn owed_notices(
        &self,
        device: &DeviceId,
        from_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<Notice>> {
        let rows = sqlx::query(
            "SELECT n.id, n.zone, n.clusters, n.kind, n.title, n.body, n.author, n.created_at_ms \
             FROM notice_units u JOIN notices n ON n.id = u.notice \
             WHERE u.device = $1 AND u.delivered_at_ms IS NULL AND n.created_at_ms >= $2 \
             ORDER BY n.id DESC LIMIT $3",
        )
        .bind(device.as_str())
        .bind(from_ms)
        .bind(i64::from(limit))
        .fetch_all(self.reads())
        .await?;
        rows.iter().map(notice_row).collect()
    }

    async fn record_satisfaction(
        &self,
        alert: AlertId,
        device: &DeviceId,
        satisfied: bool,
        now_ms: i64,
    ) -> StoreResult<SatisfactionOutcome> {
        let mut tx = self.begin_write().await?;
        let found: Option<(String, String, Option<String>)> = sqlx::query_as(concat!(
            "SELECT a.state, a.household, \
             (SELECT d.household FROM devices d WHERE d.id = $2) AS device_household \
             FROM alerts a WHERE a.id = $1 ",
            lock!()
        ))
        .bind(alert.0)
        .bind(device.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((state, household, device_household)) = found else {
            return Ok(SatisfactionOutcome::UnknownAlert);
        };
        if device_household.as_deref() != Some(household.as_str()) {
            return Ok(SatisfactionOutcome::NotTheirs);
        }
        if state != "resolved" {
            return Ok(SatisfactionOutcome::NotResolved);
        }
        let stored = sqlx::query(
            "INSERT INTO alert_satisfaction (alert, device, satisfied, answered_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (alert) DO NOTHING",
        )
        .bind(alert.0)
        .bind(device.as_str())
        .bind(satisfied)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        if stored.rows_affected() == 0 {
            return Ok(SatisfactionOutcome::AlreadyAnswered);
        }
        sqlx::query(
            "INSERT INTO alert_events (alert, at_ms, actor, action, detail) \
             VALUES ($1, $2, $3, 'satisfaction', $4)",
        )
        .bind(alert.0)
        .bind(now_ms)
        .bind(format!("device:{device}"))
        .bind(if satisfied {
            "satisfied"
        } else {
            "unsatisfied"
        })
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(SatisfactionOutcome::Stored)
    }

    async fn satisfaction(&self, alert: AlertId) -> StoreResult<Option<Satisfaction>> {
        let found: Option<(bool, i64)> = sqlx::query_as(
            "SELECT satisfied, answered_at_ms FROM alert_satisfaction WHERE alert = $1",
        )
        .bind(alert.0)
        .fetch_optional(self.reads())
        .await?;
        Ok(found.map(|(satisfied, answered_at_ms)| Satisfaction {
            satisfied,
            answered_at_ms,
        }))
    }
}
