/*
 * nextflow_schema.json at launch, without a plugin: the parameter checks (one line naming the
 * parameter) and the --help text. Nextflow puts lib/*.groovy on main.nf's classpath.
 */
import groovy.json.JsonSlurper
import java.nio.file.Files
import java.nio.file.Path
import java.util.regex.Pattern
import java.util.regex.PatternSyntaxException
import nextflow.util.Duration
import nextflow.util.MemoryUnit

class ParamsSchema {
    /** Group title -> description and its properties (name -> property), in schema order. */
    final List<Map> groups = []
    /** Parameter name -> its property, every group together. */
    final Map<String, Map> props = [:]
    /** Names that must have a value. */
    final Set<String> required = [] as Set

    /** Reads the schema file: the groups that its allOf names, in that order. */
    ParamsSchema(Path file) {
        def schema = new JsonSlurper().parse(file.toFile()) as Map
        for (ref in schema.allOf*.get('$ref')) {
            def group = schema['$defs'][ref.toString().tokenize('/')[-1]] as Map
            groups << group
            props.putAll(group.properties as Map)
            required.addAll((group.required ?: []) as List)
        }
    }

    /**
     * The first problem of the params as one line naming the parameter; null when none.
     * Unknown names stop the run only when given on the command line (or in -params-file);
     * those that only a config file sets (a site profile's own params, e.g. --project,
     * --igenomes_base) are warned about, as nf-schema does. --validate_params false: no checks.
     */
    String check(Map params, Collection<String> userNames = null) {
        params = new LinkedHashMap(params)  // a plain map: no warning for a name it lacks
        if (params.validate_params != null && params.validate_params.toString() == 'false') {
            return null
        }
        def given = (userNames ?: commandLineNames()).collect { normal(it.toString()) } as Set
        def fromConfig = []
        for (name in params.keySet()) {
            if (!props.containsKey(name.toString())) {
                if (normal(name.toString()) in given) {
                    return unknown(name.toString())
                }
                fromConfig << name.toString()
            }
        }
        if (fromConfig) {
            warn("Parameters not used by pysim, set by a config file (ignored): " +
                fromConfig.collect { "--${it}" }.join(', '))
        }
        for (name in required) {
            def value = params[name]
            if (value == null || value == true || value.toString().trim() == '') {
                return "Missing required parameter --${name} (see --help)"
            }
        }
        for (entry in props) {
            def problem = params[entry.key] == null ? null : checkValue(entry.key, params[entry.key], entry.value)
            if (problem) {
                return entry.value.errorMessage ? "${problem} (${entry.value.errorMessage})" : problem
            }
        }
        return null
    }

    /** The parameter names that the user gave: the command line's --name and -params-file's keys. */
    static List<String> commandLineNames() {
        def line = nextflow.Global.session?.commandLine ?: ''
        def names = []
        def words = line.tokenize()
        words.eachWithIndex { String word, int i ->
            if (word.startsWith('--') && word.length() > 2) {
                names << word.substring(2).tokenize('=')[0]
            } else if (word == '-params-file' && i + 1 < words.size()) {
                names.addAll(paramsFileNames(words[i + 1]))
            }
        }
        return names
    }

    /** The top-level keys of a -params-file (YAML or JSON); none where it cannot be read. */
    static List<String> paramsFileNames(String file) {
        try {
            def data = new org.yaml.snakeyaml.Yaml().load(new File(file.replaceAll(/^['"]|['"]$/, '')).text)
            return data instanceof Map ? data.keySet()*.toString() : []
        } catch (Exception ignored) {
            return []
        }
    }

    /** A warning on the console and in the log. */
    static void warn(String message) {
        org.slf4j.LoggerFactory.getLogger(nextflow.Nextflow).warn(message)
    }

    /** An unknown name, with the closest known one when it is a likely misspelling. */
    String unknown(String name) {
        def key = normal(name)
        def best = props.keySet().min { distance(key, normal(it)) }
        def close = best != null && distance(key, normal(best)) <= Math.min(2, Math.max(1, key.length().intdiv(3)))
        return "Unknown parameter --${name}" + (close ? " (did you mean --${best}?)" : '') + '; see --help'
    }

    /** A name without case, dashes or underscores (--gpu-partition, --gpuPartition, --gpu_partition). */
    static String normal(String name) {
        return name.toLowerCase().replaceAll(/[-_]/, '')
    }

    /** Levenshtein edit distance between two strings. */
    static int distance(String a, String b) {
        int[] row = (0..b.length()) as int[]
        for (int i = 1; i <= a.length(); i++) {
            int diag = row[0]
            row[0] = i
            for (int j = 1; j <= b.length(); j++) {
                int up = row[j]
                row[j] = [row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)].min()
                diag = up
            }
        }
        return row[b.length()]
    }

    /** The problem of one given value against its property; null when none. */
    String checkValue(String name, Object value, Map prop) {
        if ((prop.format == 'memory-size' && value instanceof MemoryUnit) ||
            (prop.format == 'duration' && value instanceof Duration)) {
            return null  // a config file's 920.GB or 72.h: Nextflow's own value
        }
        def types = prop.type instanceof List ? prop.type : [prop.type]
        def typed = types.collect { asType(value, it.toString()) }.find { it != null }
        if (typed == null) {
            return value == true ? "--${name} needs a value" : "--${name} must be ${typeWords(types)}, got '${value}'"
        }
        if (prop.enum && !(typed in prop.enum)) {
            return "--${name} must be ${words(prop.enum)}, got '${value}'"
        }
        if (typed instanceof Number) {
            return checkRange(name, typed as Number, prop)
        }
        return typed instanceof String ? checkString(name, typed, prop) : null
    }

    /** The value as a JSON type (Number, String, Boolean), or null when it cannot be one. */
    static Object asType(Object value, String type) {
        def text = value.toString().trim()
        switch (type) {
            case 'integer':
                return value instanceof Integer || value instanceof Long || value instanceof BigInteger ? value
                    : (value instanceof CharSequence && text.isBigInteger() ? text.toBigInteger() : null)
            case 'number':
                return value instanceof Number ? value
                    : (value instanceof CharSequence && text.isBigDecimal() ? text.toBigDecimal() : null)
            case 'boolean':
                return value instanceof Boolean ? value : null
            case 'string':
                return value instanceof CharSequence || value instanceof Number ? value.toString() : null
            default:
                return null
        }
    }

    /** A minimum / maximum / exclusive bound that the number breaks; null when none. */
    static String checkRange(String name, Number number, Map prop) {
        def n = number as BigDecimal
        def bounds = []
        if (prop.minimum != null && prop.maximum != null) {
            bounds << "from ${prop.minimum} to ${prop.maximum}"
        } else if (prop.minimum != null) {
            bounds << "of at least ${prop.minimum}"
        } else if (prop.maximum != null) {
            bounds << "of at most ${prop.maximum}"
        }
        if (prop.exclusiveMinimum != null) bounds << "over ${prop.exclusiveMinimum}"
        if (prop.exclusiveMaximum != null) bounds << "under ${prop.exclusiveMaximum}"
        def broken = (prop.minimum != null && n < (prop.minimum as BigDecimal)) ||
            (prop.maximum != null && n > (prop.maximum as BigDecimal)) ||
            (prop.exclusiveMinimum != null && n <= (prop.exclusiveMinimum as BigDecimal)) ||
            (prop.exclusiveMaximum != null && n >= (prop.exclusiveMaximum as BigDecimal))
        def kind = prop.type == 'integer' ? 'an integer' : 'a number'
        return broken ? "--${name} must be ${kind} ${bounds.join(' and ')}, got '${number}'" : null
    }

    /** Format (file, folder, memory size, duration, regex), then pattern, of a string value. */
    static String checkString(String name, String text, Map prop) {
        def problem = checkFormat(name, text, prop)
        if (problem == null && prop.pattern && !(text ==~ prop.pattern.toString())) {
            problem = "--${name}: cannot read '${text}'"
        }
        return problem
    }

    /** The format's check: Nextflow's own parsers for sizes and durations; null when it passes. */
    static String checkFormat(String name, String text, Map prop) {
        switch (prop.format) {
            case 'file-path':
                return prop.exists && !Files.isRegularFile(path(text)) ? "--${name}: file not found: ${text}" : null
            case 'directory-path':
                return prop.exists && !Files.isDirectory(path(text)) ? "--${name}: folder not found: ${text}" : null
            case 'memory-size':
                return parses { new MemoryUnit(text) } ? null : "--${name}: cannot read size '${text}' (examples: 48.GB, 512 MB)"
            case 'duration':
                return parses { Duration.of(text) } ? null : "--${name}: cannot read duration '${text}' (examples: 24h, 2d, 90.min)"
            case 'regex':
                return parses { Pattern.compile(text) } ? null : "--${name}: not a valid regular expression: '${text}'"
            default:
                return null
        }
    }

    /** A path as the workflow sees it (relative to the launch folder). */
    static Path path(String text) {
        return nextflow.file.FileHelper.asPath(text)
    }

    /** Whether the closure runs without an exception (Nextflow's own parsers). */
    static boolean parses(Closure parse) {
        try {
            parse()
            return true
        } catch (Exception ignored) {
            return false
        }
    }

    /** "a, b or c" */
    static String words(List items) {
        return items.size() == 1 ? items[0].toString() : "${items[0..-2].join(', ')} or ${items[-1]}"
    }

    /** "an integer", "a string or a boolean" */
    static String typeWords(List types) {
        def article = [integer: 'an integer', number: 'a number', boolean: 'true or false', string: 'a string']
        return words(types.collect { article[it] ?: it })
    }

    /** --help: every parameter, group by group: name, type and default, then its description. */
    String help(Map params) {
        def given = new LinkedHashMap(params)
        def lines = []
        for (group in groups) {
            lines << '' << "${group.title}: ${group.description}"
            group.properties.each { name, prop ->
                lines << "  ${"--${name}".padRight(28)} ${typeLabel(prop as Map)}${defaultLabel(name as String, prop as Map, given)}"
                lines << "      ${prop.description}" + (prop.help_text ? " ${prop.help_text}" : '')
            }
        }
        return lines.join('\n')
    }

    /** The kind of value a parameter takes, in a word. */
    static String typeLabel(Map prop) {
        def formats = ['file-path': 'file', 'directory-path': 'folder', 'memory-size': 'size',
                       'duration': 'duration', 'regex': 'regex']
        if (prop.enum) {
            return prop.enum.join('|')
        }
        return formats[prop.format] ?: (prop.type instanceof List ? prop.type.join('|') : prop.type)
    }

    /** "  [default]" from the schema, or this machine's value where the schema has none. */
    static String defaultLabel(String name, Map prop, Map params) {
        if (prop.containsKey('default')) {
            return "  [${prop.default}]"
        }
        if (params[name] != null && prop.help_text?.contains('No fixed default')) {
            return "  [here: ${params[name]}]"
        }
        return ''
    }
}
