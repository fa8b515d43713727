//! Case-insensitive substring search that behaves the same on SQLite, MySQL and PostgreSQL
//! (PostgreSQL's LIKE is case-sensitive, MySQL's usually is not): `LOWER(col) LIKE '%q%'`, with
//! the user's `%`, `_` and `\` taken literally.

use sea_orm::{
    ColumnTrait, Condition,
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
};

/// Matches rows where any of `columns` contains `q` (trimmed); `None` for a blank query.
pub fn contains_any<C: ColumnTrait>(columns: &[C], q: Option<&str>) -> Option<Condition> {
    let q = q.map(str::trim).filter(|q| !q.is_empty())?;
    let pattern = format!("%{}%", lower_escaped(q));
    Some(columns.iter().fold(Condition::any(), |any, column| {
        any.add(
            Expr::expr(Func::lower(Expr::col((column.entity_name(), *column))))
                .like(LikeExpr::new(pattern.clone()).escape('\\')),
        )
    }))
}

/// `q` lower-cased, with `%`, `_` and `\` escaped for a `LIKE … ESCAPE '\'` pattern.
pub fn lower_escaped(q: &str) -> String {
    q.to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}
