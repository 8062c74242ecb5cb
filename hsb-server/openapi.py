#!/usr/bin/env python3
"""Writes hsb-server/openapi.json, the OpenAPI document of hsb serve. Edit here, then
`python3 hsb-server/openapi.py > hsb-server/openapi.json` (the server tests check the
document against the router and, with schemathesis, against every answer)."""
import json
ref=lambda n: {"$ref": f"#/components/schemas/{n}"}
err={"description":"An error: its kind and message (400 bad input, 401 no or bad token, 403 the sandbox's own permissions, 404 unknown id or path, 409 wrong state, 413/507 over a limit, 422 isolation unavailable, 429 quota).","content":{"application/json":{"schema":ref("ErrorBody")}}}
idp={"name":"id","in":"path","required":True,"description":"The sandbox id (from create).","schema":{"type":"string"}}
execp={"name":"exec","in":"path","required":True,"description":"The number of a streamed exec (its answer's x-hsb-exec header).","schema":{"type":"string"}}
pathq={"name":"path","in":"query","required":True,"description":"An absolute path in the sandbox.","schema":{"type":"string"}}
def op(summary, opid, responses, params=None, body=None, desc=None):
    o={"summary":summary,"operationId":opid,"responses":dict(responses, default=err)}
    if desc: o["description"]=desc
    if params: o["parameters"]=params
    if body: o["requestBody"]=body
    return o
info_resp=lambda d: {"description":d,"content":{"application/json":{"schema":ref("SandboxInfo")}}}
dur={"description":"A duration: seconds as a number, or text such as \"1.5s\", \"500ms\", \"2m\".","oneOf":[{"type":"number","minimum":0},{"type":"string"}]}
size={"description":"A size: bytes as an integer, or text such as \"256MiB\".","oneOf":[{"type":"integer","minimum":0},{"type":"string"}]}
strmap={"type":"object","additionalProperties":{"type":"string"}}
doc={
 "openapi":"3.0.3",
 "info":{"title":"hybrid-sandbox server (hsb serve)","version":"1",
   "description":"Live sandboxes over HTTP/1.1: create once, exec many, files in and out, pause and resume. Every request is authenticated: a bearer token of the server's token file (`Authorization: Bearer TOKEN`), or, on the UNIX socket, the peer's uid. Each sandbox belongs to whoever created it; everyone else gets 404 for it."},
 "components":{
  "securitySchemes":{"bearer":{"type":"http","scheme":"bearer","description":"A token of the server's --token-file (not needed on the UNIX socket)."}},
  "schemas":{
   "Duration":dur,"Size":size,
   "ErrorBody":{"type":"object","required":["error"],"properties":{
      "error":{"type":"object","required":["kind","message"],"properties":{"kind":{"type":"string"},"message":{"type":"string"}}},
      "exit_status":{"type":"integer","description":"For an exec that could not start: 127 program not found, 126 not executable, 125 otherwise (as `hsb run`)."}}},
   "Limits":{"type":"object","additionalProperties":False,"properties":{
      "memory":ref("Size"),"wall_time":ref("Duration"),"cpu_time":ref("Duration"),
      "pids":{"type":"integer","minimum":0},"open_files":{"type":"integer","minimum":0},
      "file_size":ref("Size"),"output":ref("Size"),"tmp_size":ref("Size")}},
   "MountSpec":{"type":"object","additionalProperties":False,"required":["source"],"properties":{
      "source":{"type":"string","description":"Absolute host path, inside a directory the server allows (hsb serve --allow-mount)."},
      "target":{"type":"string"},"mode":{"type":"string","enum":["ro","rw"]}}},
   "CreateRequest":{"type":"object","additionalProperties":False,"properties":{
      "profile":{"type":"string","description":"A profile of the server's policy."},
      "workload":{"type":"string","description":"Same as profile."},
      "labels":strmap,
      "isolation":{"type":"string","enum":["container","microvm","auto"]},
      "needs":{"type":"array","items":{"type":"string","enum":["network","full_linux"]}},
      "image":{"type":"string","description":"An image of the server's image store."},
      "mounts":{"type":"array","items":ref("MountSpec")},
      "env":strmap,"cwd":{"type":"string"},
      "network":{"type":"string","enum":["none","loopback","egress"]},
      "limits":ref("Limits"),
      "lifetime":ref("Duration"),"idle_timeout":ref("Duration")}},
   "SandboxInfo":{"type":"object","required":["id","isolation","state","decision","enforcement","created_at"],"properties":{
      "id":{"type":"string"},"isolation":{"type":"string","enum":["container","microvm"]},
      "state":{"type":"string","enum":["running","paused","destroyed"]},
      "ended":{"type":"string","enum":["destroyed","lifetime","idle_timeout","memory_limit","failed"]},
      "decision":ref("Decision"),"enforcement":{"type":"object","description":"What protects the host (the enforcement report of `hsb run --json`)."},
      "created_at":{"type":"number"},"lifetime":{"type":"string"},"idle_timeout":{"type":"string"},
      "image":{"type":"string"},"stats":ref("Stats")}},
   "Decision":{"type":"object","required":["isolation","requested","profile","reasons"],"properties":{
      "isolation":{"type":"string"},"requested":{"type":"string"},"profile":{"type":"string"},
      "reasons":{"type":"array","items":{"type":"string"}},"fallback_from":{"type":"object"}}},
   "Stats":{"type":"object","required":["memory_bytes","peak_memory_bytes","cpu_time_ms","processes","disk_bytes","execs_running","uptime_ms","paused_ms"],"properties":{
      k:{"type":"number"} for k in ["memory_bytes","peak_memory_bytes","cpu_time_ms","processes","disk_bytes","execs_running","uptime_ms","paused_ms"]}},
   "SandboxList":{"type":"object","required":["sandboxes"],"properties":{"sandboxes":{"type":"array","items":ref("SandboxInfo")}}},
   "ExecRequest":{"type":"object","additionalProperties":False,"required":["argv"],"properties":{
      "argv":{"type":"array","items":{"type":"string"},"description":"The program (a sandbox path or a name searched in PATH) and its arguments."},
      "env":strmap,"cwd":{"type":"string"},
      "stdin":{"type":"string","description":"Standard input as text."},
      "stdin_base64":{"type":"string","description":"Standard input as base64 (not with stdin)."},
      "timeout":ref("Duration"),"cpu_time":ref("Duration"),"output":ref("Size"),
      "stream":{"type":"boolean","description":"Answer with NDJSON events (ExecEvent), then the outcome."},
      "tty":{"type":"object","description":"Interactive exec only.","properties":{"rows":{"type":"integer"},"cols":{"type":"integer"}}},
      "stdin_stream":{"type":"boolean","description":"Interactive exec only."}}},
   "Outcome":{"type":"object","description":"The outcome of `hsb run --json`; stdout_base64/stderr_base64 carry output that is not UTF-8 exactly.",
      "required":["isolation","termination","exit_code","signal","stdout","stderr","wall_time_ms","cpu_time_ms","peak_memory_bytes","decision","enforcement"],
      "properties":{"isolation":{"type":"string"},
        "termination":{"type":"string","enum":["exited","signaled","timeout","memory_limit","cpu_limit","pids_limit","output_limit","policy_violation","killed"]},
        "exit_code":{"type":"integer","nullable":True},"signal":{"type":"integer","nullable":True},
        "stdout":{"type":"string"},"stderr":{"type":"string"},
        "stdout_base64":{"type":"string"},"stderr_base64":{"type":"string"},
        "wall_time_ms":{"type":"number"},"cpu_time_ms":{"type":"number"},"peak_memory_bytes":{"type":"integer"},
        "decision":ref("Decision"),"enforcement":{"type":"object"},
        "unimplemented_syscalls":{"type":"object","additionalProperties":{"type":"integer"}}}},
   "ExecEvent":{"type":"object","required":["event"],"description":"One NDJSON line: output, then the outcome (or an error) last.","properties":{
      "event":{"type":"string","enum":["started","output","outcome","error"]},
      "stream":{"type":"string","enum":["stdout","stderr"]},"data":{"type":"string","description":"base64"},
      "outcome":ref("Outcome"),"error":{"type":"object"},"exit_status":{"type":"integer"}}},
   "FileStat":{"type":"object","required":["name","kind","size","mode","mtime"],"properties":{
      "name":{"type":"string"},"kind":{"type":"string","enum":["file","dir","symlink","other"]},
      "size":{"type":"integer"},"mode":{"type":"integer"},"mtime":{"type":"integer"},"link_target":{"type":"string"}}},
   "DirListing":{"type":"object","required":["path","entries"],"properties":{"path":{"type":"string"},"entries":{"type":"array","items":ref("FileStat")}}},
   "SignalRequest":{"type":"object","additionalProperties":False,"required":["signal"],"properties":{"signal":{"type":"integer","minimum":1,"maximum":64}}},
   "RenameRequest":{"type":"object","additionalProperties":False,"required":["from","to"],"properties":{"from":{"type":"string"},"to":{"type":"string"}}},
   "WriteResult":{"type":"object","required":["path","bytes"],"properties":{"path":{"type":"string"},"bytes":{"type":"integer"}}},
  }},
 "security":[{"bearer":[]}],
 "paths":{
  "/openapi.json":{"get":op("This document","openapi",{"200":{"description":"The OpenAPI 3 document.","content":{"application/json":{"schema":{"type":"object"}}}}})},
  "/v1/sandboxes":{
    "post":op("Create a live sandbox","create",{"201":dict(info_resp("Created; the Location header names it."),links={
        "Show":{"operationId":"show","parameters":{"id":"$response.body#/id"}},
        "Exec":{"operationId":"exec","parameters":{"id":"$response.body#/id"}},
        "PutFile":{"operationId":"putFile","parameters":{"id":"$response.body#/id"}},
        "GetFile":{"operationId":"getFile","parameters":{"id":"$response.body#/id"}},
        "DeleteFile":{"operationId":"deleteFile","parameters":{"id":"$response.body#/id"}},
        "Pause":{"operationId":"pause","parameters":{"id":"$response.body#/id"}},
        "Resume":{"operationId":"resume","parameters":{"id":"$response.body#/id"}},
        "Rename":{"operationId":"renameFile","parameters":{"id":"$response.body#/id"}},
        "Destroy":{"operationId":"destroy","parameters":{"id":"$response.body#/id"}}})},
      body={"required":False,"content":{"application/json":{"schema":ref("CreateRequest")}}},
      desc="The inputs of `hsb run` without the program, through the same policy decision and floor. Host mounts only inside directories the server allows; images only from the server's store."),
    "get":op("List the caller's sandboxes","list",{"200":{"description":"Oldest first.","content":{"application/json":{"schema":ref("SandboxList")}}}})},
  "/v1/sandboxes/{id}":{
    "get":op("State and stats","show",{"200":info_resp("The sandbox, with stats while it runs or is paused.")},[idp]),
    "delete":op("Destroy","destroy",{"204":{"description":"Destroyed: everything in it killed, what it held freed."}},[idp])},
  "/v1/sandboxes/{id}/pause":{"post":op("Pause (every process stops; paused time does not count against wall time)","pause",{"200":info_resp("Paused.")},[idp])},
  "/v1/sandboxes/{id}/resume":{"post":op("Resume","resume",{"200":info_resp("Running again.")},[idp])},
  "/v1/sandboxes/{id}/exec":{"post":op("Run a command to its end","exec",{"200":{"description":"The outcome; with \"stream\": true, NDJSON events (output as base64), then the outcome event, and the header x-hsb-exec numbers the exec for .../exec/{exec}/kill and /signal while it runs.",
      "headers":{"x-hsb-exec":{"description":"A streamed exec's number.","required":False,"schema":{"type":"string"}}},
      "links":{"Kill":{"operationId":"killExec","parameters":{"id":"$request.path.id","exec":"$response.header.x-hsb-exec"}},
               "Signal":{"operationId":"signalExec","parameters":{"id":"$request.path.id","exec":"$response.header.x-hsb-exec"}}},
      "content":{
      "application/json":{"schema":ref("Outcome")},"application/x-ndjson":{"schema":ref("ExecEvent")}}}},[idp],
      {"required":True,"content":{"application/json":{"schema":ref("ExecRequest")}}})},
  "/v1/sandboxes/{id}/exec/interactive":{"get":op("Interactive exec over a WebSocket","interactive",{"101":{"description":"Switching to the WebSocket protocol."}},[idp],
      desc="An extension for stdin streams and terminals. The client's first message is the exec request (ExecRequest as JSON text, with tty and stdin_stream as wanted). The server answers {\"event\":\"started\"} (or an error event), then output as binary messages (first byte 1 stdout, 2 stderr, then the bytes), and last the outcome event as text. The client sends stdin as binary messages and, as text, {\"op\":\"resize\",\"rows\":R,\"cols\":C}, {\"op\":\"signal\",\"signal\":N} or {\"op\":\"eof\"}. Closing the socket kills the exec.")},
  "/v1/sandboxes/{id}/files":{
    "put":op("Write a file (raw body), or make a directory","putFile",{"200":{"description":"Written.","content":{"application/json":{"schema":ref("WriteResult")}}}},
      [idp,pathq,{"name":"mode","in":"query","schema":{"type":"string","pattern":"^[0-7]{1,4}$"},"description":"Permission bits in octal (default 644)."},
       {"name":"parents","in":"query","schema":{"type":"boolean"},"description":"Make missing parent directories."},
       {"name":"directory","in":"query","schema":{"type":"boolean"},"description":"Make a directory at path (the body is ignored)."}],
      {"required":False,"content":{"application/octet-stream":{"schema":{"type":"string","format":"binary"}}}},
      desc="Paths resolve inside the sandbox, as the workload's own calls would (a symlink planted there never leads out); its limits apply: 413 over file_size, 507 over tmp_size, the limit named."),
    "get":op("Read a file (raw bytes), list a directory (JSON), or stat","getFile",{"200":{"description":"The file's bytes; a directory's listing (header x-hsb-listing: 1); or with stat=true its metadata.","content":{
      "application/octet-stream":{"schema":{"type":"string","format":"binary"}},"application/json":{"schema":{"oneOf":[ref("DirListing"),ref("FileStat")]}}}}},
      [idp,pathq,{"name":"stat","in":"query","schema":{"type":"boolean"},"description":"Metadata instead of contents (a final symlink not followed)."}]),
    "delete":op("Remove a file, symlink or directory","deleteFile",{"204":{"description":"Removed."}},
      [idp,pathq,{"name":"recursive","in":"query","schema":{"type":"boolean"},"description":"Remove a directory and everything in it."}])},
 "/v1/sandboxes/{id}/exec/{exec}/kill":{"post":op("Kill a streamed exec (its outcome says killed); not the sandbox","killExec",{"204":{"description":"Sent."}},[idp,execp])},
 "/v1/sandboxes/{id}/exec/{exec}/signal":{"post":op("Send a signal to a streamed exec","signalExec",{"204":{"description":"Sent."}},[idp,execp],
      {"required":True,"content":{"application/json":{"schema":ref("SignalRequest")}}})},
 "/v1/sandboxes/{id}/files/rename":{"post":op("Rename a file or directory","renameFile",{"204":{"description":"Renamed."}},[idp],
      {"required":True,"content":{"application/json":{"schema":ref("RenameRequest")}}})},
 }}
print(json.dumps(doc, indent=1))
