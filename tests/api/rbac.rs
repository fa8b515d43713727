//! Roles, grants, escalation guards, soft delete, the last super admin, and the audit trail.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use service::{
    pagination::Page,
    rbac::{PermissionView, roles::RoleView, users::UserView},
};

use crate::helpers::{TestApp, answer, fields, problem};

#[tokio::test]
async fn admin_creates_a_role_and_a_user_and_both_are_in_the_audit_log() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let role = app
        .post("/api/v1/roles", &admin, json!({ "name": "support", "display_name": "客服", "permissions": ["contacts:read", "users:read"] }))
        .await;
    let role: RoleView = answer(role, StatusCode::CREATED).await;
    assert_eq!(role.permissions, ["contacts:read", "users:read"]);
    let user = app
        .post("/api/v1/users", &admin, json!({ "username": "dave", "password": "dave-password-12", "roles": [{ "role_id": role.id }] }))
        .await;
    let user: UserView = answer(user, StatusCode::CREATED).await;
    assert_eq!(user.roles[0].role_id, role.id);

    let audit: Value = app.get_json("/api/v1/audit-logs?limit=10", &admin).await;
    let operations: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["operation"].as_str().unwrap())
        .collect();
    assert_eq!(&operations[..2], ["user.create", "role.create"]);
    let user_entry = &audit["items"][0];
    assert_eq!(user_entry["result"], "SUCCESS");
    assert_eq!(user_entry["username"], "admin");
    assert_eq!(user_entry["resource_name"], "dave");
    assert!(user_entry["request_id"].is_string() && user_entry["session_id"].is_string());
    assert!(
        !user_entry.to_string().contains("dave-password-12"),
        "passwords never reach the audit log"
    );
    assert_eq!(audit["items"][1]["new_values"]["display_name"], "客服");

    let filtered: Value = app
        .get_json("/api/v1/audit-logs?resource_type=role", &admin)
        .await;
    assert!(
        filtered["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["resource_type"] == "role")
    );
}

#[tokio::test]
async fn permissions_follow_grants_including_expiry() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user_id, token) = app.user_with(&["users:read"]).await;
    assert_eq!(
        app.get("/api/v1/users", &token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/roles", &token).await.status(),
        StatusCode::FORBIDDEN
    );

    let viewer = app.role_id("viewer").await;
    let expired = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let past = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{user_id}/roles"),
            &admin,
            json!({ "roles": [{ "role_id": viewer, "expires_at": expired }] }),
        )
        .await;
    assert_eq!(
        fields(&problem(past, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["roles[0].expires_at"]
    );

    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let set = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{user_id}/roles"),
            &admin,
            json!({ "roles": [{ "role_id": viewer, "expires_at": soon }] }),
        )
        .await;
    let set: UserView = answer(set, StatusCode::OK).await;
    assert_eq!(set.roles.len(), 1);
    assert_eq!(set.roles[0].role_id, viewer);
    assert_eq!(
        app.get("/api/v1/users", &token).await.status(),
        StatusCode::FORBIDDEN,
        "the old role was replaced"
    );
    assert_eq!(
        app.get("/api/v1/auth/me", &token).await.status(),
        StatusCode::OK,
        "viewer holds profile:self"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        app.get("/api/v1/auth/me", &token).await.status(),
        StatusCode::FORBIDDEN,
        "the grant expired"
    );
}

#[tokio::test]
async fn nobody_grants_or_manages_beyond_their_own_permissions() {
    let app = TestApp::spawn().await;
    let (_, manager) = app
        .user_with(&[
            "users:read",
            "users:create",
            "users:update",
            "roles:read",
            "roles:create",
        ])
        .await;
    let super_admin = app.role_id("super_admin").await;

    let escalate = app
        .post("/api/v1/users", &manager, json!({ "username": "mallory", "password": "mallory-pass-123", "roles": [{ "role_id": super_admin }] }))
        .await;
    assert_eq!(
        problem(escalate, StatusCode::FORBIDDEN).await["code"],
        "forbidden"
    );
    let wider_role = app
        .post(
            "/api/v1/roles",
            &manager,
            json!({ "name": "wider", "display_name": "x", "permissions": ["users:delete"] }),
        )
        .await;
    assert_eq!(wider_role.status(), StatusCode::FORBIDDEN);
    let found: Page<UserView> = app.get_as("/api/v1/users?q=ADMIN", &manager).await;
    let admin_user = found.items[0].id;
    let takeover = app
        .post(
            &format!("/api/v1/users/{admin_user}/password"),
            &manager,
            json!({ "password": "owned-by-mallory" }),
        )
        .await;
    assert_eq!(
        takeover.status(),
        StatusCode::FORBIDDEN,
        "cannot manage someone more powerful"
    );
    let own_role = app
        .post(
            "/api/v1/roles",
            &manager,
            json!({ "name": "narrow", "display_name": "x", "permissions": ["users:read"] }),
        )
        .await;
    let _: RoleView = answer(own_role, StatusCode::CREATED).await;

    let admin = app.admin_token().await;
    let denied: Value = app
        .get_json("/api/v1/audit-logs?result=FAILURE", &admin)
        .await;
    assert!(
        denied["items"].as_array().unwrap().len() >= 3,
        "refusals are audited: {denied}"
    );
}

#[tokio::test]
async fn built_in_roles_are_protected_and_custom_roles_can_be_edited_and_deleted() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let viewer = app.role_id("viewer").await;
    let super_admin = app.role_id("super_admin").await;
    assert_eq!(
        problem(
            app.request(
                Method::DELETE,
                &format!("/api/v1/roles/{viewer}"),
                Some(&admin)
            )
            .send()
            .await
            .unwrap(),
            StatusCode::CONFLICT
        )
        .await["code"],
        "conflict"
    );
    let rename = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/roles/{viewer}"),
            &admin,
            json!({ "name": "watcher" }),
        )
        .await;
    assert_eq!(
        fields(&problem(rename, StatusCode::CONFLICT).await),
        vec!["name"]
    );
    let narrow_super = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/roles/{super_admin}/permissions"),
            &admin,
            json!({ "permissions": [] }),
        )
        .await;
    assert_eq!(narrow_super.status(), StatusCode::CONFLICT);

    let created: RoleView = app
        .post_as(
            "/api/v1/roles",
            &admin,
            json!({ "name": "editors", "display_name": "Editors", "description": "d" }),
        )
        .await;
    let id = created.id;
    let duplicate = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({ "name": "editors", "display_name": "Again" }),
        )
        .await;
    assert_eq!(
        fields(&problem(duplicate, StatusCode::CONFLICT).await),
        vec!["name"]
    );
    let patched: RoleView = app
        .send_as(
            Method::PATCH,
            &format!("/api/v1/roles/{id}"),
            &admin,
            json!({ "display_name": "Editors 2", "description": null }),
        )
        .await;
    assert_eq!(patched.display_name, "Editors 2");
    assert!(patched.description.is_none());
    let perms: RoleView = app
        .send_as(
            Method::PUT,
            &format!("/api/v1/roles/{id}/permissions"),
            &admin,
            json!({ "permissions": ["templates:read", "templates:update"] }),
        )
        .await;
    assert_eq!(perms.permissions, ["templates:read", "templates:update"]);
    let deleted = app
        .request(Method::DELETE, &format!("/api/v1/roles/{id}"), Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/roles/{id}"), &admin)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let reused = app
        .post(
            "/api/v1/roles",
            &admin,
            json!({ "name": "editors", "display_name": "Editors again" }),
        )
        .await;
    let reused: RoleView = answer(reused, StatusCode::CREATED).await;
    assert_ne!(reused.id, id, "a deleted role's name is free again");

    let catalogue: Vec<PermissionView> = app.get_as("/api/v1/permissions", &admin).await;
    assert!(catalogue.len() >= 50);
    assert!(catalogue.iter().all(|p| p.name.contains(':')));
}

#[tokio::test]
async fn users_are_soft_deleted_and_the_last_super_admin_stays() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let admin_id = app.me(&admin).await.id;
    let self_delete = app
        .request(
            Method::DELETE,
            &format!("/api/v1/users/{admin_id}"),
            Some(&admin),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(self_delete.status(), StatusCode::CONFLICT);
    let strip = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{admin_id}/roles"),
            &admin,
            json!({ "roles": [] }),
        )
        .await;
    problem(strip, StatusCode::FORBIDDEN).await;
    // Someone holding every permission but not the super_admin role may manage the admin, yet
    // not strip the last super_admin.
    let catalogue: Vec<PermissionView> = app.get_as("/api/v1/permissions", &admin).await;
    let all: Vec<&str> = catalogue.iter().map(|p| p.name.as_str()).collect();
    let (_, deputy) = app.user_with(&all).await;
    let strip = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{admin_id}/roles"),
            &deputy,
            json!({ "roles": [] }),
        )
        .await;
    assert_eq!(
        problem(strip, StatusCode::CONFLICT).await["errors"][0]["field"],
        "roles"
    );

    let erin: UserView = app.post_as("/api/v1/users", &admin, json!({ "username": "erin", "email": "erin@example.com", "password": "erin-password-12" })).await;
    let id = erin.id;
    let taken = app
        .post(
            "/api/v1/users",
            &admin,
            json!({ "username": "erin", "password": "erin-password-12" }),
        )
        .await;
    assert_eq!(
        fields(&problem(taken, StatusCode::CONFLICT).await),
        vec!["username"]
    );
    let patched: UserView = app
        .send_as(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            &admin,
            json!({ "nickname": "小E", "email": null }),
        )
        .await;
    assert_eq!(patched.nickname.as_deref(), Some("小E"));
    assert!(patched.email.is_none());
    let deleted = app
        .request(Method::DELETE, &format!("/api/v1/users/{id}"), Some(&admin))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), &admin)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.login("erin", "erin-password-12").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .post(
            "/api/v1/users",
            &admin,
            json!({ "username": "erin", "password": "erin-password-12" }),
        )
        .await;
    let again: UserView = answer(again, StatusCode::CREATED).await;
    assert_ne!(again.id, id, "the name of a deleted user can be reused");
    let audit: Value = app
        .get_json(
            &format!("/api/v1/audit-logs?operation=user.delete&resource_id={id}"),
            &admin,
        )
        .await;
    assert_eq!(audit["items"][0]["old_values"]["username"], "erin");
}

#[tokio::test]
async fn lists_page_with_cursors() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..5 {
        app.post(
            "/api/v1/users",
            &admin,
            json!({ "username": format!("pager{i}"), "password": "pager-password-1" }),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?q=pager&limit=2&cursor={c}"),
            None => "/api/v1/users?q=pager&limit=2".to_owned(),
        };
        let page: Page<UserView> = app.get_as(&path, &admin).await;
        seen.extend(page.items.into_iter().map(|u| u.username));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec!["pager4", "pager3", "pager2", "pager1", "pager0"]);
}

/// A temporary administrator can neither make their grant permanent (on themselves or through
/// someone else) nor use the admin routes on their own account; password and 2FA changes ask for
/// the current password and wrong answers lock like failed logins.
#[tokio::test]
async fn a_temporary_admin_cannot_entrench_themselves() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let super_admin = app.role_id("super_admin").await;
    let in_4_hours = (chrono::Utc::now() + chrono::TimeDelta::hours(4)).to_rfc3339();
    let created = app
        .post(
            "/api/v1/users",
            &admin,
            json!({ "username": "temp_admin", "password": "temp-admin-password-1", "roles": [{ "role_id": super_admin, "expires_at": in_4_hours }] }),
        )
        .await;
    let temp_id = answer::<UserView>(created, StatusCode::CREATED).await.id;
    let temp = app.token("temp_admin", "temp-admin-password-1").await;

    let forever = json!({ "roles": [{ "role_id": super_admin }] });
    let own_roles = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{temp_id}/roles"),
            &temp,
            forever.clone(),
        )
        .await;
    problem(own_roles, StatusCode::FORBIDDEN).await;
    for route in ["password", "reset-totp", "unlock"] {
        let body = json!({ "password": "another-password-123" });
        let own = app
            .post(
                &format!("/api/v1/users/{temp_id}/{route}"),
                &temp,
                if route == "password" { body } else { json!({}) },
            )
            .await;
        assert_eq!(own.status(), StatusCode::FORBIDDEN, "{route} on oneself");
    }

    // Through an accomplice: the grant may not outlive the granter's own.
    let (accomplice, _) = app.user_with(&["profile:self"]).await;
    let permanent = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{accomplice}/roles"),
            &temp,
            forever,
        )
        .await;
    assert_eq!(
        fields(&problem(permanent, StatusCode::UNPROCESSABLE_ENTITY).await),
        vec!["roles[0].expires_at"]
    );
    let in_5_hours = (chrono::Utc::now() + chrono::TimeDelta::hours(5)).to_rfc3339();
    let longer = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{accomplice}/roles"),
            &temp,
            json!({ "roles": [{ "role_id": super_admin, "expires_at": in_5_hours }] }),
        )
        .await;
    assert_eq!(longer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let in_2_hours = (chrono::Utc::now() + chrono::TimeDelta::hours(2)).to_rfc3339();
    let within = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/users/{accomplice}/roles"),
            &temp,
            json!({ "roles": [{ "role_id": super_admin, "expires_at": in_2_hours }] }),
        )
        .await;
    assert_eq!(within.status(), StatusCode::OK, "{:?}", within.text().await);

    // 2FA enrolment needs the password; wrong passwords count towards the lock.
    let no_password = app.post("/api/v1/auth/totp/enroll", &temp, json!({})).await;
    assert!(no_password.status().is_client_error());
    for _ in 0..5 {
        let wrong = app
            .post(
                "/api/v1/auth/password",
                &temp,
                json!({ "current_password": "a-wrong-guess", "new_password": "a-new-password-123" }),
            )
            .await;
        assert_eq!(
            fields(&problem(wrong, StatusCode::UNPROCESSABLE_ENTITY).await),
            vec!["current_password"]
        );
    }
    let locked = app
        .post(
            "/api/v1/auth/totp/enroll",
            &temp,
            json!({ "current_password": "temp-admin-password-1" }),
        )
        .await;
    problem(locked, StatusCode::LOCKED).await;
}

/// Two super admins disabling each other at the same moment, round after round: one of them
/// must always remain (each change takes the super_admin lock before its last-admin check).
#[tokio::test]
async fn super_admins_disabling_each_other_at_once_leave_one() {
    let app = TestApp::spawn().await;
    let super_admin = app.role_id("super_admin").await;
    let mut survivor = app.admin_token().await;
    for round in 0..8 {
        let mut pair = Vec::new();
        for who in ["p", "q"] {
            let name = format!("admin_{who}{round}");
            let created = app
                .post(
                    "/api/v1/users",
                    &survivor,
                    json!({ "username": name, "password": "super-admin-pass-1", "roles": [{ "role_id": super_admin }] }),
                )
                .await;
            let id = answer::<UserView>(created, StatusCode::CREATED).await.id;
            pair.push((id, app.token(&name, "super-admin-pass-1").await));
        }
        // The previous survivor steps aside, leaving exactly two super admins.
        let previous = app.me(&survivor).await.id;
        let aside = app
            .post(
                &format!("/api/v1/users/{previous}/disable"),
                &pair[0].1,
                json!({}),
            )
            .await;
        let aside: UserView = answer(aside, StatusCode::OK).await;
        assert_eq!(aside.id, previous, "round {round}");

        let ((p, p_token), (q, q_token)) = (&pair[0], &pair[1]);
        let (disable_q, disable_p) = (
            format!("/api/v1/users/{q}/disable"),
            format!("/api/v1/users/{p}/disable"),
        );
        let (p_disables_q, q_disables_p) = tokio::join!(
            app.post(&disable_q, p_token, json!({})),
            app.post(&disable_p, q_token, json!({})),
        );
        let outcomes = [p_disables_q.status(), q_disables_p.status()];
        let succeeded = outcomes.iter().filter(|s| s.is_success()).count();
        assert_eq!(succeeded, 1, "round {round}: {outcomes:?}");
        survivor = if outcomes[0].is_success() {
            p_token.clone()
        } else {
            q_token.clone()
        };
    }
}
