// /api/user/*: profile, password, photo, info, avatars, and the public photo URL.
#include <boost/beast/core/string.hpp>
#include <charconv>
#include <nlohmann/json.hpp>

#include "common/file_util.hpp"
#include "common/image_type.hpp"
#include "server/api/api.hpp"
#include "server/api/handler_util.hpp"
#include "server/api/requests.hpp"
#include "server/http/blocking.hpp"
#include "server/http/multipart.hpp"

namespace gpuhub::api {

using boost::asio::awaitable;
using http::Context;
using http::Response;
using http::bhttp::verb;

namespace {

constexpr std::string_view kWithFileRule = "with_file must be \"true\" or \"false\"";

// What a set_photo request asks for, from its headers and multipart fields.
struct PhotoRequest {
  std::string with_file;             // "true", "false" or something invalid
  std::optional<std::string> file;   // with_file=false: the preset's name
  std::optional<std::string> image;  // with_file=true: the uploaded bytes
};

Result<PhotoRequest> DecodePhotoRequest(const http::Request& req) {
  PhotoRequest out;
  out.with_file = std::string(req["with_file"]);
  if (auto it = req.find("file"); it != req.end()) out.file = std::string(it->value());
  auto boundary = http::MultipartBoundary(http::Sv(req[http::bhttp::field::content_type]));
  if (boundary.ok()) {
    auto parts = http::ParseMultipart(req.body(), *boundary);
    if (!parts.ok()) return parts.error();
    for (auto& part : *parts) {
      if (part.name == "with_file" && out.with_file.empty()) {
        out.with_file = part.data;
      } else if (part.name == "file" && part.filename) {
        out.image = std::move(part.data);
      } else if (part.name == "file" && !out.file) {
        out.file = std::move(part.data);
      }
    }
  }
  if (out.with_file == "true") {
    if (!boundary.ok()) return boundary.error();  // 415: not multipart/form-data
    if (!out.image) {
      // A "file" part sent without a filename is still the upload.
      if (!out.file) return InvalidArgument("Missing field: file");
      out.image = std::move(out.file);
    }
  } else if (out.with_file == "false") {
    if (!out.file) return InvalidArgument("Missing field: file");
  } else {
    return InvalidArgument(std::string(kWithFileRule));
  }
  return out;
}

}  // namespace

void AddUserRoutes(http::Router& router, const ApiDeps& deps) {
  accounts::Accounts& accounts = deps.accounts;
  boost::asio::thread_pool& pool = deps.pool;

  router.Add(verb::get, "/api/user/info",
             WithAuth(accounts, [&](Context&, const accounts::Principal& p) -> awaitable<Response> {
               // The record Authenticate found: no second lookup, no copy.
               std::shared_ptr<const store::User> user = p.user;
               if (!user) user = accounts.GetUser(p.user_id);
               if (!user) co_return http::ErrorResponse(NotFound("Account not found"));
               co_return http::JsonTextResponse(http::Status::ok, UserInfoText(*user));
             }));

  router.Add(
      verb::post, "/api/user/set_profile",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& p) -> awaitable<Response> {
        auto req = DecodeProfile(ctx.request.body());
        if (!req.ok()) co_return http::ErrorResponse(req.error());
        auto user = accounts.UpdateProfile(p.user_id, *req);
        if (!user.ok()) co_return http::ErrorResponse(user.error());
        co_return http::JsonResponse(http::Status::ok, UserInfoJson(*user));
      }));

  router.Add(
      verb::post, "/api/user/set_password",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& p) -> awaitable<Response> {
        auto req = DecodeSetPassword(ctx.request.body());
        if (!req.ok()) co_return http::ErrorResponse(req.error());
        auto s = co_await http::RunBlocking(pool, [&] {
          return accounts.ChangePassword(p.user_id, req->old_password, req->new_password);
        });
        if (!s.ok()) co_return http::ErrorResponse(s.error());
        co_return OkMessage("Password updated");
      }));

  auto set_photo =
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& p) -> awaitable<Response> {
        auto req = DecodePhotoRequest(ctx.request);
        if (!req.ok()) co_return http::ErrorResponse(req.error());
        Result<store::User> user = NotFound("Account not found");
        if (req->image) {
          auto type = SniffImageType(*req->image);
          if (!type) {
            co_return http::ErrorResponse({ErrorCode::kUnsupported, "Unsupported image type"});
          }
          user = co_await http::RunBlocking(
              pool, [&] { return accounts.SetUploadedPhoto(p.user_id, *req->image, *type); });
        } else {
          user = accounts.SetPresetPhoto(p.user_id, *req->file);
        }
        if (!user.ok()) co_return http::ErrorResponse(user.error());
        co_return http::JsonResponse(http::Status::ok, UserInfoJson(*user));
      });
  router.Add(verb::post, "/api/user/set_photo", set_photo, deps.photo_bytes);
  router.Add(verb::put, "/api/user/set_photo", set_photo, deps.photo_bytes);

  router.Add(verb::get, "/api/user/avatars",
             WithAuth(accounts, [&](Context&, const accounts::Principal&) -> awaitable<Response> {
               co_return http::JsonResponse(http::Status::ok, accounts.Avatars());
             }));

  // Public, so that <img src> works without a token.
  router.Add(verb::get, "/api/user/photo/{id}", [&](Context& ctx) -> awaitable<Response> {
    const std::string& id_text = ctx.params[0];
    int64_t id = 0;
    auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    std::optional<accounts::PhotoFile> photo;
    if (ec == std::errc() && end == id_text.data() + id_text.size()) photo = accounts.FindPhoto(id);
    if (!photo) co_return http::MessageResponse(http::Status::not_found, "Photo not found");
    auto bytes = co_await http::RunBlocking(
        pool, [&] { return ReadFile(photo->path, 2 * deps.photo_bytes); });
    if (!bytes.ok()) co_return http::MessageResponse(http::Status::not_found, "Photo not found");
    Response res{http::Status::ok, 11};
    res.set(http::bhttp::field::content_type, photo->content_type);
    res.set("X-Content-Type-Options", "nosniff");
    // The URL carries the photo's version, so a versioned URL never changes.
    res.set(http::bhttp::field::cache_control,
            ctx.query.empty() ? "no-cache" : "public, max-age=31536000, immutable");
    res.body() = std::move(bytes).value();
    co_return res;
  });
}

}  // namespace gpuhub::api
