#include "cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cmath>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "cli/api.hpp"
#include "cli/follow.hpp"
#include "cli/table.hpp"
#include "client/http.hpp"
#include "common/percent_encode.hpp"
#include "common/time_util.hpp"

namespace gpuhub::cli {
namespace {
using nlohmann::json;
using Verb = boost::beast::http::verb;

// ---- helpers -------------------------------------------------------------

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string Join(const json& array, const char* sep = ",") {
  std::string out;
  if (!array.is_array()) return out;
  for (const auto& v : array)
    out += (out.empty() ? "" : sep) + (v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

std::string Gib(const json& mib) {
  if (!mib.is_number()) return "?";
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << mib.get<double>() / 1024.0;
  return s.str();
}

std::string Percent(const json& v) {
  if (!v.is_number()) return "?";
  return std::to_string(static_cast<int>(std::lround(v.get<double>()))) + "%";
}

// "2026-11-24T01:02:03Z" as "2026-11-24 01:02:03".
std::string When(const json& iso) {
  if (!iso.is_string()) return "";
  std::string t = iso.get<std::string>();
  if (t.size() == 20 && t[10] == 'T') t = t.substr(0, 10) + " " + t.substr(11, 8);
  return t;
}

std::string Hours(const json& hours) {
  if (!hours.is_number()) return "";
  int64_t s = std::llround(hours.get<double>() * 3600);
  std::string out;
  if (s >= 86400) out += std::to_string(s / 86400) + "d", s %= 86400;
  if (s >= 3600) out += std::to_string(s / 3600) + "h", s %= 3600;
  if (s >= 60) out += std::to_string(s / 60) + "m", s %= 60;
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}

const char* StateColor(const std::string& state) {
  if (state == "running" || state == "completed" || state == "online") return "32";
  if (state == "queued" || state == "creating" || state == "exited") return "33";
  if (state == "failed" || state == "lost" || state == "offline" || state == "gone") return "31";
  return "";
}

Result<int64_t> ParseId(const std::string& what, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) {
    return InvalidArgument(what + " must be a positive integer, got \"" + text + "\"");
  }
  return v;
}

// ---- the command context -------------------------------------------------

class Cli {
 public:
  explicit Cli(Io& io) : io_(io) {}

  int Main(int argc, const char* const* argv);

 private:
  using Action = std::function<Status()>;
  CLI::App* Command(CLI::App& parent, const std::string& name, const std::string& help,
                    Action action, bool listing = false);
  void Print(const json& j) { io_.out << j.dump(2) << "\n"; }
  void Print(const Table& t) { io_.out << t.Render(io_.width, io_.color); }

  Result<Api> Connect();
  // Connects and makes one call.
  Result<json> Call(Verb method, const std::string& target, const json& body = nullptr);
  // `rows` as JSON with --json, else as a table with `head` and a row per item.
  using RowFn = std::function<std::vector<Cell>(const json&)>;
  Status List(const Result<json>& rows, std::vector<std::string> head, const RowFn& row);
  // Connects, makes one call, and prints `done` unless it failed.
  Status Do(Verb method, const std::string& target, const std::string& done);
  Result<std::string> Password(const std::string& prompt, bool confirm);
  Result<std::string> StdinLine();
  Result<json> FindTask(Api& api, int64_t id);

  // commands
  Status Login();
  Status Logout();
  Status Whoami();
  Status Passwd();
  Status ProfileSet();
  Status Machines();
  Status Images();
  Status Containers();
  Status ContainerCreate();
  Status ContainerOp(const std::string& op);
  Status RunTask();
  Status Queue();
  Status Cancel();
  Status Log();
  Status AdminUsers();
  Status AdminAddUser();
  Status AdminRmUser();
  Status AdminMachines();
  Status AdminAddMachine();
  Status AdminRmMachine();
  Status AdminAddImage();
  Status AdminRmImage();

  Io& io_;
  std::vector<std::pair<CLI::App*, Action>> actions_;
  bool json_ = false;
  int exit_code_ = kExitOk;  // set by commands that pass on another code (run --wait)

  // options
  std::string server_, account_, machine_, user_, container_, image_, duration_, gpus_, name_;
  std::string description_, id_;
  std::optional<std::string> nickname_, email_, phone_;
  std::vector<std::string> ports_, command_, ids_;
  int gpu_count_ = 0;
  bool password_stdin_ = false, verbose_ = false, all_ = false, wait_ = false, follow_ = false;
  bool admin_role_ = false;
};

CLI::App* Cli::Command(CLI::App& parent, const std::string& name, const std::string& help,
                       Action action, bool listing) {
  CLI::App* sub = parent.add_subcommand(name, help);
  if (listing) sub->add_flag("--json", json_, "print JSON for scripts instead of a table");
  actions_.emplace_back(sub, std::move(action));
  return sub;
}

Result<Api> Cli::Connect() {
  auto config = LoadConfig(io_.env);
  if (!config.ok()) return config.error();
  if (config->server.empty()) {
    return InvalidArgument("no server: run `gpuhub login --server URL` or set GPUHUB_SERVER");
  }
  auto url = ParseServer(config->server);
  if (!url.ok()) return url.error();
  if (config->token.empty()) {
    return Error{ErrorCode::kUnauthenticated, "Not logged in; run `gpuhub login`"};
  }
  return Api(*url, config->token);
}

Result<json> Cli::Call(Verb method, const std::string& target, const json& body) {
  auto api = Connect();
  if (!api.ok()) return api.error();
  return api->Call(method, target, body);
}

Status Cli::List(const Result<json>& rows, std::vector<std::string> head, const RowFn& row) {
  if (!rows.ok()) return rows.error();
  if (json_) {
    Print(*rows);
    return Status::Ok();
  }
  Table t(std::move(head));
  for (const auto& item : *rows) t.Add(row(item));
  Print(t);
  return Status::Ok();
}

Status Cli::Do(Verb method, const std::string& target, const std::string& done) {
  auto res = Call(method, target);
  if (!res.ok()) return res.error();
  io_.out << done << "\n";
  return Status::Ok();
}

Result<std::string> Cli::StdinLine() {
  std::string line;
  if (!std::getline(io_.in, line)) return InvalidArgument("--password-stdin: no line on stdin");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

Result<std::string> Cli::Password(const std::string& prompt, bool confirm) {
  if (password_stdin_) return StdinLine();
  auto first = io_.read_secret(prompt);
  if (!first.ok() || !confirm) return first;
  auto again = io_.read_secret("Repeat " + prompt);
  if (!again.ok()) return again;
  if (*again != *first) return InvalidArgument("the passwords do not match");
  return first;
}

// The task with `id` from the caller's lists, else from every machine's.
Result<json> Cli::FindTask(Api& api, int64_t id) {
  auto me = api.Get("/api/user/info");
  if (!me.ok()) return me.error();
  std::vector<std::string> lists = {"/api/task/user/" + PercentEncode(Str(*me, "account"))};
  auto machines = api.Get("/api/machines/info");
  if (!machines.ok()) return machines.error();
  for (const auto& m : *machines)
    lists.push_back("/api/task/machine/" + PercentEncode(Str(m, "id")));
  for (const auto& target : lists) {
    auto tasks = api.Get(target + "?status=all");
    if (!tasks.ok()) return tasks.error();
    for (const auto& t : *tasks) {
      if (t.value("taskId", int64_t{0}) == id) return t;
    }
  }
  return Error{ErrorCode::kNotFound, "Task " + std::to_string(id) + " not found"};
}

// ---- accounts --------------------------------------------------------------

Status Cli::Login() {
  auto saved = LoadConfig(io_.env);
  if (!saved.ok()) return saved.error();
  std::string server = server_.empty() ? saved->server : server_;
  if (server.empty()) return InvalidArgument("no server: give --server URL (or set GPUHUB_SERVER)");
  auto url = ParseServer(server);
  if (!url.ok()) return url.error();
  std::string account = account_;
  if (account.empty()) {
    if (password_stdin_) return InvalidArgument("give ACCOUNT with --password-stdin");
    io_.err << "Account: " << std::flush;
    if (!std::getline(io_.in, account) || account.empty()) return InvalidArgument("no account");
  }
  auto password = Password("Password: ", false);
  if (!password.ok()) return password.error();
  Api anonymous(*url, "");
  auto res = anonymous.Post("/api/auth/login", {{"account", account}, {"password", *password}});
  if (!res.ok()) return res.error();
  Config config{server, Str(*res, "access_token"), account};
  if (auto s = SaveConfig(ConfigPath(io_.env), config); !s.ok()) return s;
  io_.out << "Logged in to " << server << " as " << account << "\n";
  return Status::Ok();
}

Status Cli::Logout() {
  auto api = Connect();
  if (api.ok()) {
    auto res = api->Post("/api/auth/logout");
    // A token the server no longer takes is logged out all the same.
    if (!res.ok() && res.error().code != ErrorCode::kUnauthenticated) return res.error();
  } else if (api.error().code != ErrorCode::kUnauthenticated) {
    return api.error();
  }
  auto path = ConfigPath(io_.env);
  auto config = LoadConfigFile(path);
  if (config.ok() && !config->token.empty()) {
    config->token.clear();
    if (auto s = SaveConfig(path, *config); !s.ok()) return s;
  }
  io_.out << "Logged out\n";
  return Status::Ok();
}

Status Cli::Whoami() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto me = api->Get("/api/user/info");
  if (!me.ok()) return me.error();
  if (json_) {
    Print(*me);
  } else {
    io_.out << Str(*me, "account") << " (" << Str(*me, "role") << ") on " << api->server().scheme
            << "://" << client::HostPort(api->server()) << "\n";
  }
  return Status::Ok();
}

Status Cli::Passwd() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto old_pw = Password("Current password: ", false);
  if (!old_pw.ok()) return old_pw.error();
  auto new_pw = Password("New password: ", true);
  if (!new_pw.ok()) return new_pw.error();
  auto res =
      api->Post("/api/user/set_password", {{"old_password", *old_pw}, {"new_password", *new_pw}});
  if (!res.ok()) return res.error();
  io_.out << "Password changed\n";
  return Status::Ok();
}

Status Cli::ProfileSet() {
  json body = json::object();
  if (nickname_) body["nickname"] = *nickname_;
  // An empty email or phone clears it.
  if (email_) body["email"] = email_->empty() ? json(nullptr) : json(*email_);
  if (phone_) body["phone"] = phone_->empty() ? json(nullptr) : json(*phone_);
  if (body.empty()) return InvalidArgument("give at least one of --nickname, --email, --phone");
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto res = api->Post("/api/user/set_profile", body);
  if (!res.ok()) return res.error();
  if (json_) {
    Print(*res);
    return Status::Ok();
  }
  Table t({"ACCOUNT", "NICKNAME", "EMAIL", "PHONE"});
  t.Add({{Str(*res, "account")},
         {Str(*res, "nickname")},
         {Str(*res, "email")},
         {Str(*res, "phone")}});
  Print(t);
  return Status::Ok();
}

// ---- machines, images, containers -------------------------------------------

Status Cli::Machines() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto machines = api->Get("/api/machines/info");
  if (!machines.ok()) return machines.error();
  if (json_) {
    Print(*machines);
    return Status::Ok();
  }
  std::vector<std::string> head = {"MACHINE", "STATE", "GPUS FREE"};
  if (verbose_) head.insert(head.end(), {"CPU", "MEMORY GiB", "DISK GiB"});
  head.emplace_back("GPU: UTIL MEMORY(GiB) HOLDER");
  Table t(head);
  for (const auto& m : *machines) {
    bool online = m.value("online", false);
    int total = 0, free = 0;
    std::string gpus;
    for (const auto& g : m.value("gpu", json::array())) {
      ++total;
      std::string holder = Str(g, "account");
      if (holder.empty()) {
        ++free;
        holder = "free";
      } else {
        holder += "#" + Str(g, "task_id");
      }
      gpus += (gpus.empty() ? "" : "  ") + Str(g, "index") + ": " + Percent(g["utilization"]) +
              " " + Gib(g["memory_used"]) + "/" + Gib(g["memory_total"]) + " " + holder;
    }
    std::vector<Cell> row = {
        {Str(m, "id")},
        {online ? "online" : "offline", StateColor(online ? "online" : "offline")},
        {std::to_string(free) + "/" + std::to_string(total)}};
    if (verbose_) {
      const json cpu = m.value("cpu", json::object()), mem = m.value("memory", json::object()),
                 disk = m.value("disk", json::object());
      row.push_back({Percent(cpu["usage"]) + " of " + Str(cpu, "cores") + " " + Str(cpu, "name")});
      row.push_back({Gib(mem["used"]) + "/" + Gib(mem["total"])});
      row.push_back({Str(disk, "used") + "/" + Str(disk, "total")});
    }
    row.push_back({gpus});
    t.Add(std::move(row));
  }
  Print(t);
  return Status::Ok();
}

Status Cli::Images() {
  return List(
      Call(Verb::get, "/api/images"), {"ID", "NAME", "IMAGE", "DESCRIPTION"},
      [](const json& i) -> std::vector<Cell> {
        return {{Str(i, "id")}, {Str(i, "name")}, {Str(i, "image")}, {Str(i, "description")}};
      });
}

std::vector<Cell> ContainerRow(const json& c) {
  std::string ports;
  for (const auto& p : c.value("ports", json::array())) {
    ports += (ports.empty() ? "" : ",") + Str(p, "container") + "->" + Str(p, "host");
  }
  std::string status = Str(c, "status");
  return {{Str(c, "id")},
          {Str(c, "name")},
          {Str(c, "machine_id")},
          {Str(c, "image")},
          {status, StateColor(status)},
          {ports}};
}

const std::vector<std::string> kContainerHead = {"ID",    "NAME",   "MACHINE",
                                                 "IMAGE", "STATUS", "PORTS"};

Status Cli::Containers() {
  return List(Call(Verb::get, all_ ? "/api/containers?all=1" : "/api/containers"), kContainerHead,
              ContainerRow);
}

Status Cli::ContainerCreate() {
  json body = {{"machine_id", machine_}};
  if (!name_.empty()) body["name"] = name_;
  json ports = json::array();
  for (const auto& p : ports_) {
    auto port = ParseId("port", p);
    if (!port.ok()) return port.error();
    ports.push_back(*port);
  }
  if (!ports.empty()) body["port"] = ports;
  auto api = Connect();
  if (!api.ok()) return api.error();
  // IMAGE is a catalog id, or a catalog name or image reference.
  if (auto id = ParseId("image", image_); id.ok()) {
    body["image_id"] = *id;
  } else {
    auto images = api->Get("/api/images");
    if (!images.ok()) return images.error();
    for (const auto& i : *images) {
      if (Str(i, "name") == image_ || Str(i, "image") == image_) {
        body["image_id"] = i["id"];
        break;
      }
    }
    if (!body.contains("image_id")) {
      return Error{ErrorCode::kNotFound, "Image not found: " + image_ + " (see `gpuhub images`)"};
    }
  }
  auto c = api->Post("/api/containers", body);
  if (!c.ok()) return c.error();
  if (json_) {
    Print(*c);
    return Status::Ok();
  }
  Table t(kContainerHead);
  t.Add(ContainerRow(*c));
  Print(t);
  return Status::Ok();
}

Status Cli::ContainerOp(const std::string& op) {
  auto api = Connect();
  if (!api.ok()) return api.error();
  // CONTAINER is an id, or the name of one of the caller's containers.
  std::string id = container_;
  if (!ParseId("container", container_).ok()) {
    auto list = api->Get("/api/containers");
    if (!list.ok()) return list.error();
    std::vector<std::string> found;
    for (const auto& c : *list) {
      if (Str(c, "name") == container_) found.push_back(Str(c, "id"));
    }
    if (found.empty()) return Error{ErrorCode::kNotFound, "Container not found: " + container_};
    if (found.size() > 1) {
      return InvalidArgument("several containers are named " + container_ + "; give its id");
    }
    id = found.front();
  }
  auto res = op == "rm" ? api->Delete("/api/containers/" + id)
                        : api->Post("/api/containers/" + id + "/" + op);
  if (!res.ok()) return res.error();
  if (json_) {
    Print(*res);
  } else if (op == "rm") {
    io_.out << "Container " << container_ << " deleted\n";
  } else {
    io_.out << "Container " << container_ << " " << Str(*res, "status") << "\n";
  }
  return Status::Ok();
}

// ---- tasks -------------------------------------------------------------------

Status Cli::RunTask() {
  if ((gpu_count_ > 0) == !gpus_.empty())
    return InvalidArgument("give exactly one of -g COUNT or --gpus LIST");
  auto duration = ParseDuration(duration_, std::chrono::hours(1));
  if (!duration.ok() || duration->count() <= 0) {
    return InvalidArgument("-t: bad duration \"" + duration_ +
                           "\" (e.g. 90m, 1h30m, 2d, or hours)");
  }
  std::string command;
  for (const auto& word : command_) command += (command.empty() ? "" : " ") + word;
  json body = {{"machine_id", machine_}, {"containername", container_}, {"command", command}};
  // Send what the user wrote: a bare number means hours to the server too.
  bool bare = duration_.find_first_not_of("0123456789.") == std::string::npos;
  body["duration"] = bare ? json(std::stod(duration_)) : json(duration_);
  if (gpu_count_ > 0) {
    body["gpu_count"] = gpu_count_;
  } else {
    json list = json::array();
    std::stringstream s(gpus_);
    for (std::string item; std::getline(s, item, ',');) {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
      if (item.empty() || ec != std::errc() || end != item.data() + item.size() || v < 0) {
        return InvalidArgument("--gpus: expected GPU indices like 0,2, got \"" + gpus_ + "\"");
      }
      list.push_back(v);
    }
    body["gpus"] = list;
  }
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto res = api->Post("/api/task/request", body);
  if (!res.ok()) return res.error();
  std::ostream& note = wait_ ? io_.err : io_.out;
  if (json_) {
    Print(*res);
  } else {
    std::string status = Str(*res, "status");
    note << "Task " << Str(*res, "taskId") << " " << status << " on " << machine_;
    if (status == "running") {
      note << " (GPUs " << Join((*res)["gpu_ids"]) << ")\n";
    } else {
      note << "; estimated start " << When((*res)["estimated_start"]) << "\n";
    }
    note << std::flush;
  }
  if (!wait_) return Status::Ok();
  int64_t id = (*res)["taskId"].get<int64_t>();
  auto end = FollowTask(*api, id, machine_, io_.out, io_.err);
  if (!end.ok()) return end.error();
  std::string status = Str(*end, "status");
  const json& code = (*end)["exit_code"];
  if (status == "completed" || status == "failed") {
    exit_code_ = code.is_number_integer() ? code.get<int>() : 1;
  } else {
    io_.err << "Task " << id << " " << status << "\n";
    exit_code_ = code.is_number_integer() && code.get<int>() != 0 ? code.get<int>() : 1;
  }
  return Status::Ok();
}

Status Cli::Queue() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  std::vector<std::string> targets;
  if (!machine_.empty()) {
    targets.push_back("/api/task/machine/" + PercentEncode(machine_));
  } else if (all_) {
    auto machines = api->Get("/api/machines/info");
    if (!machines.ok()) return machines.error();
    for (const auto& m : *machines)
      targets.push_back("/api/task/machine/" + PercentEncode(Str(m, "id")));
  } else {
    std::string account = user_;
    if (account.empty()) {
      auto me = api->Get("/api/user/info");
      if (!me.ok()) return me.error();
      account = Str(*me, "account");
    }
    targets.push_back("/api/task/user/" + PercentEncode(account));
  }
  json tasks = json::array();
  for (const auto& target : targets) {
    auto list = api->Get(target);
    if (!list.ok()) return list.error();
    for (auto& t : *list) tasks.push_back(std::move(t));
  }
  if (json_) {
    Print(tasks);
    return Status::Ok();
  }
  Table t({"ID", "USER", "MACHINE", "GPUS", "STATE", "START", "DURATION", "EXIT", "COMMAND"});
  for (const auto& task : tasks) {
    std::string state = Str(task, "status");
    std::string start =
        state == "queued" ? "~" + When(task["estimated_start"]) : When(task["start_time"]);
    std::string gpus = task["gpu_ids"].empty() || task["gpu_ids"].is_null()
                           ? Str(task, "gpu_count") + " any"
                           : Join(task["gpu_ids"]);
    t.Add({{Str(task, "taskId")},
           {Str(task, "account")},
           {Str(task, "machine_id")},
           {gpus},
           {state, StateColor(state)},
           {start},
           {Hours(task["duration"])},
           {Str(task, "exit_code")},
           {Str(task, "command")}});
  }
  Print(t);
  return Status::Ok();
}

Status Cli::Cancel() {
  std::vector<int64_t> ids;
  for (const auto& text : ids_) {
    auto id = ParseId("TASK", text);
    if (!id.ok()) return id.error();
    ids.push_back(*id);
  }
  auto api = Connect();
  if (!api.ok()) return api.error();
  Status worst;
  for (int64_t id : ids) {
    auto task = FindTask(*api, id);
    Result<json> res = task.ok()
                           ? api->Post("/api/task/cancel",
                                       {{"task_id", id}, {"machine_id", Str(*task, "machine_id")}})
                           : task;
    if (!res.ok()) {
      if (res.error().code == ErrorCode::kUnavailable) return res.error();
      io_.err << "gpuhub: task " << id << ": " << res.error().message << "\n";
      worst = res.error();
      continue;
    }
    io_.out << "Task " << id << " cancelled\n";
  }
  if (!worst.ok()) exit_code_ = ExitCodeFor(worst.error());
  return Status::Ok();
}

Status Cli::Log() {
  auto id = ParseId("TASK", id_);
  if (!id.ok()) return id.error();
  auto api = Connect();
  if (!api.ok()) return api.error();
  if (!follow_) {
    auto log = api->GetText("/api/task/" + std::to_string(*id) + "/log");
    if (!log.ok()) return log.error();
    io_.out << *log << std::flush;
    return Status::Ok();
  }
  auto task = FindTask(*api, *id);
  if (!task.ok()) return task.error();
  auto end = FollowTask(*api, *id, Str(*task, "machine_id"), io_.out, io_.err);
  return end.ok() ? Status::Ok() : Status(end.error());
}

// ---- admin -------------------------------------------------------------------

Status Cli::AdminUsers() {
  return List(Call(Verb::get, "/api/admin/users"),
              {"ID", "ACCOUNT", "ROLE", "NICKNAME", "EMAIL", "PHONE"},
              [](const json& u) -> std::vector<Cell> {
                return {{Str(u, "id")},       {Str(u, "account")}, {Str(u, "role")},
                        {Str(u, "nickname")}, {Str(u, "email")},   {Str(u, "phone")}};
              });
}

Status Cli::AdminAddUser() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto password = Password("Password for " + account_ + ": ", true);
  if (!password.ok()) return password.error();
  json body = {{"account", account_}, {"password", *password}};
  if (admin_role_) body["role"] = "admin";
  auto res = api->Post("/api/auth/register", body);
  if (!res.ok()) return res.error();
  io_.out << "User " << account_ << " added (id " << Str(*res, "id") << ")\n";
  return Status::Ok();
}

Status Cli::AdminRmUser() {
  return Do(Verb::delete_, "/api/admin/users/" + PercentEncode(account_),
            "User " + account_ + " deleted");
}

Status Cli::AdminMachines() {
  return List(
      Call(Verb::get, "/api/admin/machines"), {"ID", "IP", "CREATED", "LAST SEEN"},
      [](const json& m) -> std::vector<Cell> {
        return {{Str(m, "id")}, {Str(m, "ip")}, {When(m["created_at"])}, {When(m["last_seen"])}};
      });
}

Status Cli::AdminAddMachine() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  auto res = api->Post("/api/admin/machines", {{"id", id_}});
  if (!res.ok()) return res.error();
  const auto& s = api->server();
  std::string ws = std::string(s.tls ? "wss://" : "ws://") + client::HostPort(s) +
                   client::JoinPath(s, "/ws/agent");
  std::string token = Str(*res, "agent_token");
  io_.out << "Machine " << id_
          << " added. On it, save the token below to a file (mode 0600) and run:\n"
          << "  gpuhub-agent --server " << ws << " --token-file TOKEN_FILE\n"
          << "The agent token (shown only now):\n"
          << token << "\n";
  return Status::Ok();
}

Status Cli::AdminRmMachine() {
  return Do(Verb::delete_, "/api/admin/machines/" + PercentEncode(id_),
            "Machine " + id_ + " removed");
}

Status Cli::AdminAddImage() {
  auto api = Connect();
  if (!api.ok()) return api.error();
  json body = {{"name", name_}, {"image", image_}};
  if (!description_.empty()) body["description"] = description_;
  auto res = api->Post("/api/admin/images", body);
  if (!res.ok()) return res.error();
  if (json_) {
    Print(*res);
  } else {
    io_.out << "Image " << Str(*res, "id") << " added: " << name_ << " (" << image_ << ")\n";
  }
  return Status::Ok();
}

Status Cli::AdminRmImage() {
  auto id = ParseId("ID", id_);
  if (!id.ok()) return id.error();
  return Do(Verb::delete_, "/api/admin/images/" + std::to_string(*id), "Image " + id_ + " removed");
}

// ---- wiring --------------------------------------------------------------------

int Cli::Main(int argc, const char* const* argv) {
  CLI::App app(
      "gpuhub: use the lab's GPU cluster from a shell (docs/cli.md).\n"
      "Exit codes: 0 success, 1 the server refused, 2 usage error, 3 cannot reach the "
      "server.",
      "gpuhub");
  app.require_subcommand(1);
  app.set_version_flag("--version", "gpuhub 0.1.0");
  app.footer(
      "Environment: GPUHUB_SERVER and GPUHUB_TOKEN override ~/.config/gpuhub/config.json; "
      "NO_COLOR turns colour off.");

  auto* login =
      Command(app, "login", "log in and save the server URL and token", [this] { return Login(); });
  login->add_option("--server", server_, "server URL, http(s)://HOST[:PORT][/PATH]");
  login->add_option("ACCOUNT", account_, "account (asked when omitted)");
  login->add_flag("--password-stdin", password_stdin_, "read the password from stdin's first line");
  Command(app, "logout", "revoke the saved token and forget it", [this] { return Logout(); });
  Command(
      app, "whoami", "show the account logged in", [this] { return Whoami(); }, true);
  Command(app, "passwd", "change your password", [this] { return Passwd(); })
      ->add_flag("--password-stdin", password_stdin_,
                 "read the old, then the new password from stdin");
  auto* profile = app.add_subcommand("profile", "your profile")->require_subcommand(1);
  auto* set = Command(
      *profile, "set", "change nickname, email or phone (an empty value clears email or phone)",
      [this] { return ProfileSet(); }, true);
  set->add_option("--nickname", nickname_, "1-64 characters");
  set->add_option("--email", email_, "an email address");
  set->add_option("--phone", phone_, "5-20 of digits, spaces, + and -");

  auto* machines = Command(
      app, "machines", "list machines, their GPUs and who holds them",
      [this] { return Machines(); }, true);
  machines->alias("nodes");
  machines->add_flag("-v,--verbose", verbose_, "also CPU, memory and disk");
  Command(
      app, "images", "list the image catalog", [this] { return Images(); }, true);

  auto* containers = Command(
      app, "containers", "list and manage your containers (default: ls)",
      [this] { return Containers(); }, true);
  containers->add_flag("--all", all_, "everyone's containers (admins)");
  Command(
      *containers, "ls", "list your containers", [this] { return Containers(); }, true)
      ->add_flag("--all", all_, "everyone's containers (admins)");
  auto* create = Command(
      *containers, "create", "create and start a container", [this] { return ContainerCreate(); },
      true);
  create->add_option("MACHINE", machine_, "machine id")->required();
  create->add_option("IMAGE", image_, "catalog image id or name")->required();
  create->add_option("--name", name_, "container name (default: generated)");
  create->add_option("-p,--port", ports_, "container port to publish (repeatable)");
  for (std::string op : {"start", "stop", "restart", "rm"}) {
    Command(
        *containers, op, op == "rm" ? "delete a container" : op + " a container",
        [this, op] { return ContainerOp(op); }, true)
        ->add_option("CONTAINER", container_, "container id or name")
        ->required();
  }

  auto* run = Command(
      app, "run", "lease GPUs and run a command in your container", [this] { return RunTask(); },
      true);
  run->add_option("-m,--machine", machine_, "machine id")->required();
  run->add_option("-c,--container", container_, "your container's name on that machine")
      ->required();
  auto* count =
      run->add_option("-g,--gpu-count", gpu_count_, "number of GPUs")->check(CLI::PositiveNumber);
  run->add_option("--gpus", gpus_, "exactly these GPU indices, e.g. 0,2")->excludes(count);
  run->add_option("-t,--time", duration_, "lease duration: 90m, 1h30m, 2d, or hours")->required();
  run->add_flag("-w,--wait", wait_,
                "follow the task to its end, print its output, exit with its exit code");
  run->add_option("COMMAND", command_, "the command (after --), run with sh -c")->required();

  auto* queue = Command(
      app, "queue", "list tasks (default: yours)", [this] { return Queue(); }, true);
  auto* qm = queue->add_option("--machine", machine_, "the tasks of one machine");
  auto* qu = queue->add_option("--user", user_, "the tasks of one account")->excludes(qm);
  queue->add_flag("--all", all_, "the tasks of every machine")->excludes(qm)->excludes(qu);
  Command(app, "cancel", "cancel tasks", [this] { return Cancel(); })
      ->add_option("TASK", ids_, "task ids")
      ->required();
  auto* log =
      Command(app, "log", "print a task's output (the last 64 KiB)", [this] { return Log(); });
  log->add_option("TASK", id_, "task id")->required();
  log->add_flag("-f,--follow", follow_, "keep printing output until the task ends");

  auto* admin = app.add_subcommand("admin", "administration (admins only)")->require_subcommand(1);
  Command(
      *admin, "users", "list users", [this] { return AdminUsers(); }, true);
  auto* add_user = Command(*admin, "add-user", "add a user", [this] { return AdminAddUser(); });
  add_user->add_option("ACCOUNT", account_, "1-32 of a-z 0-9 _ . -, starting with a letter")
      ->required();
  add_user->add_flag("--password-stdin", password_stdin_,
                     "read the password from stdin's first line");
  add_user->add_flag("--admin", admin_role_, "make the user an admin");
  Command(*admin, "rm-user", "delete a user", [this] { return AdminRmUser(); })
      ->add_option("ACCOUNT", account_, "account")
      ->required();
  Command(
      *admin, "machines", "list registered machines", [this] { return AdminMachines(); }, true);
  Command(*admin, "add-machine", "register a machine; prints its agent token on the last line",
          [this] { return AdminAddMachine(); })
      ->add_option("ID", id_, "machine id")
      ->required();
  Command(*admin, "rm-machine", "remove a machine", [this] { return AdminRmMachine(); })
      ->add_option("ID", id_, "machine id")
      ->required();
  Command(
      *admin, "images", "list the image catalog", [this] { return Images(); }, true);
  auto* add_image = Command(
      *admin, "add-image", "add a catalog image", [this] { return AdminAddImage(); }, true);
  add_image->add_option("NAME", name_, "catalog name")->required();
  add_image->add_option("IMAGE", image_, "the runtime's image reference")->required();
  add_image->add_option("--description", description_, "description");
  Command(*admin, "rm-image", "remove a catalog image", [this] { return AdminRmImage(); })
      ->add_option("ID", id_, "image id")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e, io_.out, io_.err);
    return code == 0 ? kExitOk : kExitUsage;
  }
  // The innermost command given runs.
  Action action;
  for (auto& [sub, a] : actions_) {
    if (sub->parsed()) action = a;
  }
  if (!action) return kExitUsage;
  Status s = action();
  if (!s.ok()) {
    io_.err << "gpuhub: " << s.error().message << "\n";
    return ExitCodeFor(s.error());
  }
  return exit_code_;
}

}  // namespace

int Run(int argc, const char* const* argv, Io& io) { return Cli(io).Main(argc, argv); }

}  // namespace gpuhub::cli
