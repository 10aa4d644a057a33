// Versioned schema migrations for the SQLite store.
//
// Migrations are an ordered list of (version, SQL). ApplyMigrations runs each
// one whose version is not yet in `schema_migrations`, inside a transaction
// together with its row there, so a migration is applied entirely or not at
// all. To change the schema, append a migration to the list in migrations.cpp;
// never edit or reorder one that has shipped. Not thread-safe: call with
// exclusive use of the connection (the store does so at open).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <span>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::store::sqlite {

struct Migration {
  int64_t version;       // strictly increasing along the list, starting at 1
  std::string_view sql;  // one or more statements; constant text, no values spliced in
};

// gpuhub's migrations, oldest first.
std::span<const Migration> Migrations();

// Creates `schema_migrations` if needed and applies every migration of
// `migrations` not yet recorded there, in order. kInternal with the database's
// message if one fails (that one is rolled back; earlier ones stay), if the
// list is not strictly increasing, or if the database already holds a version
// newer than the list knows (it was written by a newer gpuhub).
Status ApplyMigrations(sqlite3* db, std::span<const Migration> migrations);

}  // namespace gpuhub::store::sqlite
