//! Contacts, tags, customer groups and group members, synced from instances.
//!
//! Tags are rows linked through `contact_tags` (not a JSON column) so "any of" and "all of" tag
//! filters use indexes on every backend, which keeps searches fast at a million contacts.

use sea_orm_migration::{prelude::*, schema::*};

use crate::builders::{create, drop_all, fk, table, with_timestamps};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let contacts = with_timestamps(
            table("contacts")
                .col(big_integer("instance_id"))
                .col(big_integer("account_id"))
                .col(string_len("wxid", 100))
                .col(string_len_null("nickname", 100))
                .col(string_len_null("remark", 100))
                .col(string_len_null("avatar_url", 500))
                .col(string_len_null("phone", 20))
                .col(small_integer_null("gender"))
                .col(string_len_null("region", 100))
                .col(string_len_null("corp_name", 100))
                .col(text_null("signature"))
                .col(string_len("contact_type", 16).default("friend"))
                .col(string_len("friend_status", 16).default("normal"))
                .col(boolean("is_star").default(false))
                .col(boolean("is_top").default(false))
                .col(boolean("is_blocked").default(false))
                .col(string_len_null("add_source", 50))
                .col(date_time_null("add_time"))
                .col(date_time_null("last_chat_time"))
                .col(integer("chat_count").default(0))
                .col(json_null("custom_fields"))
                .col(date_time_null("last_sync_time"))
                .foreign_key(&mut fk(
                    "contacts",
                    "account_id",
                    "wework_accounts",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            contacts,
            "contacts",
            &[
                ("wxid", &["account_id", "wxid"], true),
                ("instance", &["instance_id", "id"], false),
                ("nickname", &["nickname"], false),
                ("remark", &["remark"], false),
                ("type", &["contact_type", "id"], false),
                ("updated", &["updated_at", "id"], false),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await?;

        // instance_id 0 and group_name '' stand for "local" so the unique key needs no NULLs.
        let tags = with_timestamps(
            table("tags")
                .col(big_integer("instance_id").default(0))
                .col(string_len("group_name", 100).default(""))
                .col(string_len("name", 100))
                .col(string_len_null("remote_id", 100))
                .col(string_len_null("color", 16))
                .col(integer("sort_order").default(0))
                .to_owned(),
        );
        create(
            manager,
            tags,
            "tags",
            &[
                ("name", &["instance_id", "group_name", "name"], true),
                ("remote", &["remote_id"], false),
            ],
        )
        .await?;

        let contact_tags = Table::create()
            .table("contact_tags")
            .if_not_exists()
            .col(big_integer("contact_id"))
            .col(big_integer("tag_id"))
            .col(date_time("created_at"))
            .primary_key(Index::create().col("contact_id").col("tag_id"))
            .foreign_key(&mut fk(
                "contact_tags",
                "contact_id",
                "contacts",
                ForeignKeyAction::Cascade,
            ))
            .foreign_key(&mut fk(
                "contact_tags",
                "tag_id",
                "tags",
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        create(
            manager,
            contact_tags,
            "contact_tags",
            &[("tag", &["tag_id", "contact_id"], false)],
        )
        .await?;

        let groups = with_timestamps(
            table("chat_groups")
                .col(big_integer("instance_id"))
                .col(big_integer("account_id"))
                .col(string_len("group_wxid", 100))
                .col(string_len_null("group_name", 200))
                .col(string_len_null("group_avatar_url", 500))
                .col(text_null("group_notice"))
                .col(text_null("group_description"))
                .col(integer("member_count").default(0))
                .col(integer("max_member_count").default(500))
                .col(string_len_null("owner_wxid", 100))
                .col(string_len("my_role", 16).default("member"))
                .col(boolean("is_muted").default(false))
                .col(boolean("is_disturb_off").default(false))
                .col(date_time_null("join_time"))
                .col(date_time_null("last_message_time"))
                .col(big_integer("message_count").default(0))
                .col(boolean("is_active").default(true))
                .col(json_null("tags"))
                .col(json_null("custom_fields"))
                .col(date_time_null("last_sync_time"))
                .foreign_key(&mut fk(
                    "chat_groups",
                    "account_id",
                    "wework_accounts",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .col(date_time_null("deleted_at"))
        .to_owned();
        create(
            manager,
            groups,
            "chat_groups",
            &[
                ("wxid", &["account_id", "group_wxid"], true),
                ("instance", &["instance_id", "id"], false),
                ("name", &["group_name"], false),
                ("deleted", &["deleted_at"], false),
            ],
        )
        .await?;

        let members = with_timestamps(
            table("group_members")
                .col(big_integer("group_id"))
                .col(string_len("member_wxid", 100))
                .col(string_len_null("member_nickname", 100))
                .col(string_len_null("group_nickname", 100))
                .col(string_len_null("member_avatar_url", 500))
                .col(string_len("member_type", 16).default("external"))
                .col(string_len("role", 16).default("member"))
                .col(date_time_null("join_time"))
                .col(string_len_null("invite_by", 100))
                .col(boolean("is_muted").default(false))
                .col(date_time_null("mute_until"))
                .col(date_time_null("last_speak_time"))
                .col(integer("speak_count").default(0))
                .col(boolean("is_active").default(true))
                .col(json_null("tags"))
                .foreign_key(&mut fk(
                    "group_members",
                    "group_id",
                    "chat_groups",
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .col(date_time_null("left_at"))
        .to_owned();
        create(
            manager,
            members,
            "group_members",
            &[
                ("member", &["group_id", "member_wxid"], true),
                ("wxid", &["member_wxid"], false),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_all(
            manager,
            &[
                "group_members",
                "chat_groups",
                "contact_tags",
                "tags",
                "contacts",
            ],
        )
        .await
    }
}
