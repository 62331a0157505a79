// agentfleet's model gateway policy (nginx njs 0.8; its engine has no for...of).
// admit: every request from an agent, after nginx's own rate and connection limits; it answers a
// refusal itself (the upstream never sees it) or hands the request to @model. count: the response
// body on its way back, to charge the tokens of its usage to the agent's daily budget.
import fs from 'fs';

const POLICY = JSON.parse(fs.readFileSync('/etc/nginx/agentfleet/policy.json'));
const DATED = /_[0-9]{8}$/;
// A non-streamed answer larger than this is not parsed for its usage (Messages answers are far smaller).
const KEEP = 4 * 1024 * 1024;
const USAGE_FIELDS = ['input_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'];

function refuse(r, status, rule, detail) {
    r.variables.agentfleet_rule = rule;
    r.headersOut['Content-Type'] = 'text/plain';
    r.return(status, `agentfleet gateway: denied by rule ${rule}: ${detail}\n`);
}

// Tools with a type are Anthropic-defined: the server-side ones (web_search, web_fetch,
// code_execution, ...) act from the provider's side, past the egress allowlist. Deny by default, so
// a tool type added to the API later is refused too; custom tools (no type) run in the agent.
function toolProblem(policy, request) {
    const tools = Array.isArray(request.tools) ? request.tools : [];
    for (let i = 0; i < tools.length; i++) {
        const tool = tools[i];
        const type = tool && typeof tool.type === 'string' ? tool.type : 'custom';
        if (type !== 'custom' && policy.tools.indexOf(type) < 0 && policy.tools.indexOf(type.replace(DATED, '')) < 0) {
            return `tool type ${JSON.stringify(type.slice(0, 64))} is not allowed for this agent`;
        }
    }
    if (request.mcp_servers === undefined) {
        return '';
    }
    const servers = Array.isArray(request.mcp_servers) ? request.mcp_servers : [null];
    for (let i = 0; i < servers.length; i++) {
        // By URL: a server's name in the request is whatever the caller chose to call it.
        if (!servers[i] || policy.mcp_servers.indexOf(servers[i].url) < 0) {
            return 'an MCP server in mcp_servers is not allowed for this agent';
        }
    }
    return '';
}

function day() {
    return new Date().toISOString().slice(0, 10);
}

function admit(r) {
    const agent = r.variables.agentfleet_agent;
    const policy = POLICY[agent];
    if (!policy) {
        return refuse(r, 403, 'caller', "only the stack's agents may call the model API");
    }
    // The path as sent must be the path nginx checked: no dot segments or escapes that could mean
    // another endpoint to the upstream.
    const asSent = r.variables.request_uri.split('?')[0];
    if (asSent !== r.uri || policy.endpoints.indexOf(`${r.method} ${r.uri}`) < 0) {
        return refuse(r, 403, 'endpoints', `${r.method} on this path is not an allowed endpoint for this agent`);
    }
    const body = r.requestText;
    if (body === undefined && r.headersIn['Content-Length'] !== undefined) {
        return refuse(r, 413, 'max-body', 'the request body is larger than the gateway keeps in memory');
    }
    if (body && body.length > policy.max_body) {
        return refuse(r, 413, 'max-body', `the request body is larger than ${policy.max_body} bytes`);
    }
    if (body) {
        let request;
        try {
            request = JSON.parse(body);
        } catch (e) {
            return refuse(r, 400, 'json', 'the request body is not JSON');
        }
        const problem = request && typeof request === 'object' ? toolProblem(policy, request) : '';
        if (problem) {
            return refuse(r, 403, 'tools', problem);
        }
    }
    const usage = ngx.shared.agentfleet_usage;
    const key = `${agent}:${day()}`;
    if (policy.budget_requests && (usage.get(`${key}:requests`) || 0) >= policy.budget_requests) {
        return refuse(r, 429, 'budget-requests', `the daily budget of ${policy.budget_requests} requests is spent`);
    }
    if (policy.budget_tokens && (usage.get(`${key}:tokens`) || 0) >= policy.budget_tokens) {
        return refuse(r, 429, 'budget-tokens', `the daily budget of ${policy.budget_tokens} tokens is spent`);
    }
    usage.incr(`${key}:requests`, 1, 0);
    r.internalRedirect('@model');
}

function tokens(usage, fields) {
    let total = 0;
    for (let i = 0; usage && typeof usage === 'object' && i < fields.length; i++) {
        const value = usage[fields[i]];
        total += Number.isInteger(value) && value > 0 ? value : 0;
    }
    return total;
}

// A stream's message_start holds the input's usage and message_delta the output so far (each
// delta repeats the running total); only complete lines are parsed, the rest waits for the next chunk.
function countStream(r, text) {
    const end = text.lastIndexOf('\n');
    const lines = text.slice(0, end + 1).split('\n');
    for (let i = 0; i < lines.length; i++) {
        if (lines[i].indexOf('"usage"') < 0 || lines[i].slice(0, 5) !== 'data:') {
            continue;
        }
        try {
            const event = JSON.parse(lines[i].slice(5));
            if (event.type === 'message_start' && event.message) {
                r.variables.agentfleet_input = String(tokens(event.message.usage, USAGE_FIELDS));
                r.variables.agentfleet_output = String(tokens(event.message.usage, ['output_tokens']));
            } else if (event.type === 'message_delta') {
                r.variables.agentfleet_output = String(tokens(event.usage, ['output_tokens']));
            }
        } catch (e) {
            // Not an event we count.
        }
    }
    return text.slice(end + 1);
}

function count(r, data, flags) {
    r.sendBuffer(data, flags);
    const stream = (r.headersOut['Content-Type'] || '').indexOf('text/event-stream') === 0;
    if (r.variables.agentfleet_overflow !== '1') {
        let rest = r.variables.agentfleet_rest + data;
        rest = stream ? countStream(r, rest) : rest;
        if (rest.length > KEEP) {
            r.variables.agentfleet_overflow = '1';
            rest = '';
        }
        r.variables.agentfleet_rest = rest;
    }
    if (!flags.last) {
        return;
    }
    let total = 0;
    if (stream) {
        total = Number(r.variables.agentfleet_input) + Number(r.variables.agentfleet_output);
    } else if (r.variables.agentfleet_overflow !== '1') {
        try {
            const usage = JSON.parse(r.variables.agentfleet_rest).usage;
            total = tokens(usage, USAGE_FIELDS) + tokens(usage, ['output_tokens']);
        } catch (e) {
            total = 0;
        }
    }
    r.variables.agentfleet_rest = '';
    r.variables.agentfleet_tokens = String(total);
    if (total) {
        ngx.shared.agentfleet_usage.incr(`${r.variables.agentfleet_agent}:${day()}:tokens`, total, 0);
    }
}

export default { admit, count };
