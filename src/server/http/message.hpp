// HTTP message types and the one place where errors become HTTP responses.
// Pure helpers; thread-safe.
#pragma once

#include <boost/beast/http.hpp>
#include <iosfwd>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/result.hpp"

namespace gpuhub::http {

namespace bhttp = boost::beast::http;

// The body type of a Response. Its value is a std::string, used as one
// (`res.body() = text`, append, size, ...), that can instead share an
// immutable buffer: after `res.body().Share(buffer)` the response sends
// *buffer without copying it (a large cached document served to many clients
// at once), and the string itself stays empty. Assigning to the body again
// drops the shared buffer; so does reading a body into it.
struct ResponseBody {
  class value_type : public std::string {
   public:
    using std::string::string;
    value_type() = default;
    value_type(const std::string& s) : std::string(s) {}                 // NOLINT: implicit
    value_type(std::string&& s) noexcept : std::string(std::move(s)) {}  // NOLINT: implicit

    template <typename T>
    requires(!std::is_same_v<std::remove_cvref_t<T>, value_type> &&
             std::is_assignable_v<std::string&, T&&>) value_type&
    operator=(T&& v) {
      shared_.reset();
      std::string::operator=(std::forward<T>(v));
      return *this;
    }

    // Sends *buffer (never null) instead of the string, which is cleared.
    void Share(std::shared_ptr<const std::string> buffer) {
      clear();
      shared_ = std::move(buffer);
    }
    // The shared buffer, or null when the string is the body.
    const std::shared_ptr<const std::string>& shared() const { return shared_; }
    // The bytes that will be sent.
    std::string_view view() const {
      return shared_ ? std::string_view(*shared_) : std::string_view(*this);
    }

   private:
    std::shared_ptr<const std::string> shared_;
  };

  static std::uint64_t size(const value_type& body) { return body.view().size(); }

  class reader {
   public:
    template <bool isRequest, class Fields>
    explicit reader(bhttp::header<isRequest, Fields>& h, value_type& body)
        : body_(body), inner_(h, body) {}
    void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
      body_ = std::string();
      inner_.init(length, ec);
    }
    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      return inner_.put(buffers, ec);
    }
    void finish(boost::beast::error_code& ec) { inner_.finish(ec); }

   private:
    value_type& body_;
    bhttp::string_body::reader inner_;
  };

  class writer {
   public:
    using const_buffers_type = boost::asio::const_buffer;
    template <bool isRequest, class Fields>
    explicit writer(const bhttp::header<isRequest, Fields>&, const value_type& body)
        : bytes_(body.view()) {}
    void init(boost::beast::error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(boost::beast::error_code& ec) {
      ec = {};
      return {{const_buffers_type{bytes_.data(), bytes_.size()}, false}};
    }

   private:
    std::string_view bytes_;
  };
};

// For test failure messages: prints the bytes a body sends.
void PrintTo(const ResponseBody::value_type& body, std::ostream* os);

using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<ResponseBody>;
using Status = bhttp::status;

// Beast's string_view as a std::string_view.
inline std::string_view Sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// The HTTP status for an expected failure.
Status StatusFor(ErrorCode code);

// A response with a JSON body (invalid UTF-8 in strings is replaced, never thrown).
Response JsonResponse(Status status, const nlohmann::json& body);

// Appends `s` as a JSON string literal, byte for byte what nlohmann::json's
// dump(-1, ' ', false, error_handler_t::replace) writes for it: for building
// small answers without a json tree.
void AppendJsonString(std::string& out, std::string_view s);

// A response whose body `json` is JSON text already (Content-Type and
// Cache-Control as JsonResponse sets them).
Response JsonTextResponse(Status status, std::string json);

// {"message": "..."} with the given status.
Response MessageResponse(Status status, std::string_view message);

// The error's status and {"message": error.message}.
Response ErrorResponse(const Error& error);

}  // namespace gpuhub::http
